package ip

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func check(t testing.TB, f *Filter, ip string) string {
	t.Helper()
	r := &engine.Request{}
	if ip != "" {
		r.Peer.IP = netip.MustParseAddr(ip)
	}
	err := f.Check(context.Background(), r, &engine.Decision{})
	if err == nil {
		return ""
	}
	var d *engine.Denial
	if !errors.As(err, &d) || d.Status != 403 {
		t.Fatalf("Check(%s) = %v, want a 403 denial", ip, err)
	}
	return d.Reason
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		ip, want    string
	}{
		{"allow v4 inside", []string{"10.0.0.0/8"}, nil, "10.1.2.3", ""},
		{"allow v4 outside", []string{"10.0.0.0/8"}, nil, "11.0.0.1", ReasonNotAllowed},
		{"allow v4 edges", []string{"10.0.0.0/8"}, nil, "10.255.255.255", ""},
		{"allow v4 just below", []string{"10.0.0.0/8"}, nil, "9.255.255.255", ReasonNotAllowed},
		{"v4-mapped client matches v4 prefix", []string{"10.0.0.0/8"}, nil, "::ffff:10.0.0.1", ""},
		{"v4-mapped client denied", nil, []string{"10.0.0.0/8"}, "::ffff:10.0.0.1", ReasonDenied},
		{"v4-mapped prefix matches v4 client", []string{"::ffff:10.0.0.0/104"}, nil, "10.9.9.9", ""},
		{"v4 prefix does not match v6", []string{"0.0.0.0/0"}, nil, "2001:db8::1", ReasonNotAllowed},
		{"v6 prefix does not match v4", []string{"::/0"}, nil, "10.0.0.1", ReasonNotAllowed},
		{"allow v6 inside", []string{"2001:db8::/32"}, nil, "2001:db8:ffff::1", ""},
		{"allow v6 outside", []string{"2001:db8::/32"}, nil, "2001:db9::1", ReasonNotAllowed},
		{"v6 zone ignored", []string{"fe80::/10"}, nil, "fe80::1%eth0", ""},
		{"v6 /128", []string{"2001:db8::1/128"}, nil, "2001:db8::1", ""},
		{"v6 /128 neighbour", []string{"2001:db8::1/128"}, nil, "2001:db8::2", ReasonNotAllowed},
		{"deny wins over allow", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, "10.1.2.3", ReasonDenied},
		{"deny wins, allow elsewhere", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, "10.2.0.1", ""},
		{"deny only passes others", nil, []string{"192.0.2.0/24"}, "198.51.100.1", ""},
		{"deny only blocks", nil, []string{"192.0.2.0/24"}, "192.0.2.200", ReasonDenied},
		{"deny all v4", nil, []string{"0.0.0.0/0"}, "255.255.255.255", ReasonDenied},
		{"deny all v6", nil, []string{"::/0"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ReasonDenied},
		{"deny all v6 keeps v4", nil, []string{"::/0"}, "1.2.3.4", ""},
		{"zero address denied", nil, []string{"192.0.2.0/24"}, "", ReasonInvalid},
		{"zero address with allow", []string{"0.0.0.0/0", "::/0"}, nil, "", ReasonInvalid},
		{"overlapping allow", []string{"10.0.0.0/8", "10.0.0.0/16", "11.0.0.0/8"}, nil, "11.3.0.1", ""},
		{"adjacent merged", []string{"10.0.0.0/9", "10.128.0.0/9"}, nil, "10.200.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(Options{Allow: prefixes(tt.allow...), Deny: prefixes(tt.deny...)})
			if err != nil {
				t.Fatal(err)
			}
			if got := check(t, f, tt.ip); got != tt.want {
				t.Fatalf("Check(%s) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"empty", Options{}, "allow or deny is required"},
		{"host bits", Options{Allow: prefixes("10.0.0.1/8")}, "did you mean 10.0.0.0/8"},
		{"zero prefix", Options{Deny: []netip.Prefix{{}}}, "deny: 0: invalid prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

// randomPrefix draws a canonical prefix of either family, biased towards a few
// networks so that lists overlap and nest.
func randomPrefix(rng *rand.Rand) netip.Prefix {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.IntN(4)) * 64
	}
	if rng.IntN(2) == 0 {
		a := netip.AddrFrom4([4]byte(b[:4]))
		return netip.PrefixFrom(a, rng.IntN(33)).Masked()
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), rng.IntN(129)).Masked()
}

func randomAddr(rng *rand.Rand) netip.Addr {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.IntN(4))*64 + byte(rng.IntN(2))*63
	}
	if rng.IntN(2) == 0 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// TestRangesMatchNaive compares the compiled ranges with netip.Prefix.Contains over a
// linear list.
func TestRangesMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		list := make([]netip.Prefix, rng.IntN(20))
		for i := range list {
			list[i] = randomPrefix(rng)
		}
		r, err := compile(list)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			a := randomAddr(rng)
			if got, want := r.contains(a), naive(list, a); got != want {
				t.Fatalf("round %d: contains(%s) = %v, want %v; list %v", round, a, got, want, list)
			}
		}
	}
}

func naive(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func FuzzContains(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 10, 1, 2, 3}, []byte{})
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32}, []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, spec, addr []byte) {
		// spec is a sequence of (4 or 16 address bytes, 1 length byte) records chosen by
		// the first byte's parity.
		var list []netip.Prefix
		for len(spec) >= 5 {
			n := 4
			if spec[0]&1 == 1 && len(spec) >= 17 {
				n = 16
			}
			a, _ := netip.AddrFromSlice(spec[:n])
			p := netip.PrefixFrom(a, int(spec[n])%(a.BitLen()+1)).Masked()
			list = append(list, p)
			spec = spec[n+1:]
		}
		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		r, err := compile(list)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r.contains(a.Unmap()), naive(list, a.Unmap()); got != want {
			t.Fatalf("contains(%s) = %v, want %v; list %v", a, got, want, list)
		}
	})
}

func TestCheckAllocs(t *testing.T) {
	f := bigFilter(t, 1000)
	for _, ip := range []string{"10.1.2.3", "2001:db8::1", "::ffff:192.0.2.1"} {
		r := &engine.Request{Peer: engine.Peer{IP: netip.MustParseAddr(ip)}}
		d := &engine.Decision{}
		if n := testing.AllocsPerRun(100, func() { _ = f.Check(context.Background(), r, d) }); n != 0 {
			t.Errorf("%s: %v allocations per Check, want 0", ip, n)
		}
	}
}

// bigFilter allows n random prefixes and denies n/10.
func bigFilter(t testing.TB, n int) *Filter {
	rng := rand.New(rand.NewPCG(3, 4))
	var allow, deny []netip.Prefix
	for i := range n {
		var b [16]byte
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		p4 := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), 16+rng.IntN(17)).Masked()
		p6 := netip.PrefixFrom(netip.AddrFrom16(b), 32+rng.IntN(97)).Masked()
		allow = append(allow, p4, p6)
		if i%10 == 0 {
			deny = append(deny, p4)
		}
	}
	f, err := New(Options{Allow: allow, Deny: deny})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func BenchmarkCheck(b *testing.B) {
	f := bigFilter(b, 10000)
	r := &engine.Request{Peer: engine.Peer{IP: netip.MustParseAddr("2001:db8::1")}}
	d := &engine.Decision{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Check(ctx, r, d)
	}
}
