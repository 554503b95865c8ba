package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/valkeystore"
	"github.com/portcullis/portcullis/test/redisharness"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func memStore() (*store.Memory, *clock) {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return store.NewMemory(store.MemoryOptions{Clock: c.Now}), c
}

func req(ip string) *engine.Request {
	return &engine.Request{
		Method: "GET", Path: "/api/x", Header: http.Header{},
		Peer: engine.Peer{IP: netip.MustParseAddr(ip)},
	}
}

func mustNew(t *testing.T, o Options) *Filter {
	t.Helper()
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// check runs f on a fresh decision and returns the denial (nil when allowed).
func check(t *testing.T, f *Filter, r *engine.Request, id *engine.Identity) (*engine.Denial, *engine.Decision) {
	t.Helper()
	d := &engine.Decision{Identity: id, Route: "api"}
	err := f.Check(context.Background(), r, d)
	if err == nil {
		return nil, d
	}
	var den *engine.Denial
	if !errors.As(err, &den) {
		t.Fatalf("technical error: %v", err)
	}
	return den, d
}

func TestPerIPLimitAndHeaders(t *testing.T) {
	m, clk := memStore()
	f := mustNew(t, Options{Limits: []LimitOptions{{
		Name: "per-ip", Key: []KeyPart{KeyIP}, Rate: 2, Period: time.Minute, Limiter: m,
	}}})
	for i := range 2 {
		if den, d := check(t, f, req("192.0.2.1"), nil); den != nil || len(d.Limits) != 1 || d.Limits[0].Remaining != uint64(1-i) {
			t.Fatalf("request %d denied: %v %+v", i, den, d.Limits)
		}
	}
	den, d := check(t, f, req("192.0.2.1"), nil)
	if den == nil || den.Status != http.StatusTooManyRequests || den.Reason != ReasonOver {
		t.Fatalf("third request: %v", den)
	}
	want := map[string]string{
		"Retry-After":      "30",
		"Ratelimit-Policy": `"per-ip";q=2;w=60`,
		"Ratelimit":        `"per-ip";r=0;t=60`,
	}
	for k, v := range want {
		if got := den.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !d.Limits[0].Over || d.Limits[0].Limit != 2 || d.Limits[0].Window != time.Minute {
		t.Errorf("status %+v", d.Limits[0])
	}
	// IPv4-mapped IPv6 is the same client; another client is independent.
	if den, _ := check(t, f, req("::ffff:192.0.2.1"), nil); den == nil {
		t.Error("a mapped address escaped the limit")
	}
	if den, _ := check(t, f, req("192.0.2.2"), nil); den != nil {
		t.Error("clients are not independent")
	}
	clk.Advance(30 * time.Second)
	if den, _ := check(t, f, req("192.0.2.1"), nil); den != nil {
		t.Error("no refill after Retry-After")
	}
}

func TestKeyParts(t *testing.T) {
	alice := &engine.Identity{Subject: "alice", KeyID: "k1"}
	bob := &engine.Identity{Subject: "bob", KeyID: "k2"}
	tests := []struct {
		name   string
		key    []KeyPart
		a, b   func() (*engine.Request, *engine.Identity)
		shared bool // whether a and b share a bucket
	}{
		{"ip_net v4 groups a /24", []KeyPart{KeyIPNet},
			func() (*engine.Request, *engine.Identity) { return req("198.51.100.7"), nil },
			func() (*engine.Request, *engine.Identity) { return req("198.51.100.200"), nil }, true},
		{"ip_net v4 separates /24s", []KeyPart{KeyIPNet},
			func() (*engine.Request, *engine.Identity) { return req("198.51.100.7"), nil },
			func() (*engine.Request, *engine.Identity) { return req("198.51.101.7"), nil }, false},
		{"ip_net v6 groups a /64", []KeyPart{KeyIPNet},
			func() (*engine.Request, *engine.Identity) { return req("2001:db8:1:2::1"), nil },
			func() (*engine.Request, *engine.Identity) { return req("2001:db8:1:2:ffff::9"), nil }, true},
		{"subject", []KeyPart{KeySubject},
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), alice },
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.2"), alice }, true},
		{"subject separates users", []KeyPart{KeySubject},
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), alice },
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), bob }, false},
		{"api key", []KeyPart{KeyAPIKey},
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), alice },
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), bob }, false},
		{"header value", []KeyPart{KeyHeader},
			func() (*engine.Request, *engine.Identity) {
				r := req("192.0.2.1")
				r.Header.Set("X-Tenant", "a")
				return r, nil
			},
			func() (*engine.Request, *engine.Identity) {
				r := req("192.0.2.9")
				r.Header.Set("X-Tenant", "a")
				return r, nil
			}, true},
		{"method and path", []KeyPart{KeyMethod, KeyPath},
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), nil },
			func() (*engine.Request, *engine.Identity) { r := req("192.0.2.1"); r.Method = "POST"; return r, nil }, false},
		{"route and ip combined", []KeyPart{KeyRoute, KeyIP},
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), nil },
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.3"), nil }, false},
		{"no key: one bucket", nil,
			func() (*engine.Request, *engine.Identity) { return req("192.0.2.1"), nil },
			func() (*engine.Request, *engine.Identity) { return req("203.0.113.1"), bob }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := memStore()
			f := mustNew(t, Options{Limits: []LimitOptions{{
				Name: "l", Key: tc.key, Header: "x-tenant", Rate: 1, Period: time.Hour, Limiter: m,
			}}})
			ra, ia := tc.a()
			if den, _ := check(t, f, ra, ia); den != nil {
				t.Fatal("first request denied")
			}
			rb, ib := tc.b()
			den, _ := check(t, f, rb, ib)
			if shared := den != nil; shared != tc.shared {
				t.Fatalf("shared bucket = %v, want %v", shared, tc.shared)
			}
		})
	}
}

func TestShadowAndSeveralLimits(t *testing.T) {
	m, _ := memStore()
	f := mustNew(t, Options{Stage: "rl", HeadersOnAllow: true, Limits: []LimitOptions{
		{Name: "per-ip", Key: []KeyPart{KeyIP}, Rate: 3, Period: time.Minute, Limiter: m},
		{Name: "trial", Key: []KeyPart{KeyIP}, Rate: 1, Period: time.Minute, Shadow: true, Limiter: m},
	}})
	den, d := check(t, f, req("192.0.2.1"), nil)
	if den != nil || d.Response.Get("Ratelimit-Policy") != `"per-ip";q=3;w=60` ||
		d.Response.Get("Ratelimit") != `"per-ip";r=2;t=20` {
		t.Fatalf("allowed headers: %v %v", den, d.Response)
	}
	den, d = check(t, f, req("192.0.2.1"), nil)
	if den != nil {
		t.Fatal("a shadow limit denied")
	}
	if len(d.Shadowed) != 1 || d.Shadowed[0] != "rl:ratelimit.over:trial" || !d.Limits[1].Over || !d.Limits[1].Shadow {
		t.Fatalf("shadow not reported: %v %+v", d.Shadowed, d.Limits)
	}
	check(t, f, req("192.0.2.1"), nil)
	if den, _ := check(t, f, req("192.0.2.1"), nil); den == nil {
		t.Fatal("enforced limit did not deny")
	}
}

func TestNewValidation(t *testing.T) {
	m, _ := memStore()
	ok := LimitOptions{Name: "a", Rate: 1, Period: time.Second, Limiter: m}
	bad := []func(*LimitOptions){
		func(l *LimitOptions) { l.Name = "" },
		func(l *LimitOptions) { l.Name = "with space" },
		func(l *LimitOptions) { l.Name = `q"uote` },
		func(l *LimitOptions) { l.Rate = 0 },
		func(l *LimitOptions) { l.Limiter = nil },
		func(l *LimitOptions) { l.Key = []KeyPart{KeyHeader} },
		func(l *LimitOptions) { l.Key = []KeyPart{99} },
	}
	for i, mod := range bad {
		lo := ok
		mod(&lo)
		if _, err := New(Options{Limits: []LimitOptions{lo}}); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("no limits accepted")
	}
	f := mustNew(t, Options{Limits: []LimitOptions{{Name: "s", Key: []KeyPart{KeySubject}, Rate: 1, Period: time.Second, Limiter: m}}})
	if !f.NeedsIdentity() {
		t.Error("NeedsIdentity false for a subject key")
	}
}

// TestHeaderFloodBounded: an attacker rotating a keyed header cannot grow the store
// beyond its key bound, and long values are hashed to a fixed size.
func TestHeaderFloodBounded(t *testing.T) {
	m := store.NewMemory(store.MemoryOptions{MaxKeys: 256, Shards: 4})
	f := mustNew(t, Options{Limits: []LimitOptions{{
		Name: "tenant", Key: []KeyPart{KeyHeader}, Header: "X-Tenant", Rate: 1, Period: time.Hour, Limiter: m,
	}}})
	long := string(make([]byte, 4096))
	for i := range 5000 {
		r := req("192.0.2.1")
		r.Header.Set("X-Tenant", long+strconv.Itoa(i))
		check(t, f, r, nil)
	}
	if n := m.Len(); n > 256 {
		t.Fatalf("store holds %d keys > 256", n)
	}
	l := &f.limits[0]
	r := req("192.0.2.1")
	r.Header.Set("X-Tenant", long)
	if k := l.appendKey(nil, r, &engine.Decision{}); len(k) > 64 {
		t.Fatalf("key of %d bytes for a 4 KiB header", len(k))
	}
}

func TestCheckAllocations(t *testing.T) {
	m, _ := memStore()
	f := mustNew(t, Options{Limits: []LimitOptions{
		{Name: "a", Key: []KeyPart{KeyIP, KeyMethod, KeyPath}, Rate: 1_000_000, Period: time.Second, Limiter: m},
		{Name: "b", Key: []KeyPart{KeyIPNet}, Rate: 1_000_000, Period: time.Second, Limiter: m},
	}})
	r := req("192.0.2.1")
	d := &engine.Decision{Limits: make([]engine.LimitStatus, 0, 4)}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		d.Limits = d.Limits[:0]
		if err := f.Check(ctx, r, d); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per allowed Check", allocs)
	}
}

// TestStoreDenyPolicy: with on_store_error deny and the store down, the stage denies
// with 503; with allow it passes; a shadow limit never denies.
func TestStoreDenyPolicy(t *testing.T) {
	srv := redisharness.Start(t)
	vs, err := valkeystore.New(valkeystore.Options{Addrs: []string{srv.Addr()}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vs.Close)
	g := store.NewGuard(vs, store.NewMemory(store.MemoryOptions{}), store.GuardOptions{})
	srv.Stop()
	tests := []struct {
		policy store.Policy
		shadow bool
		status int // 0: allowed
	}{
		{store.PolicyDeny, false, http.StatusServiceUnavailable},
		{store.PolicyDeny, true, 0},
		{store.PolicyAllow, false, 0},
		{store.PolicyLocal, false, 0},
	}
	for _, tc := range tests {
		f := mustNew(t, Options{Limits: []LimitOptions{{
			Name: "l", Key: []KeyPart{KeyIP}, Rate: 5, Period: time.Minute, Shadow: tc.shadow, Limiter: g.Limiter(tc.policy),
		}}})
		den, _ := check(t, f, req("192.0.2.1"), nil)
		switch {
		case tc.status == 0 && den != nil, tc.status != 0 && (den == nil || den.Status != tc.status):
			t.Errorf("policy %s shadow %v: denial %v, want status %d", tc.policy, tc.shadow, den, tc.status)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	m := store.NewMemory(store.MemoryOptions{})
	f, _ := New(Options{Limits: []LimitOptions{
		{Name: "per-ip", Key: []KeyPart{KeyIP}, Rate: 1_000_000_000, Period: time.Hour, Limiter: m},
	}})
	r := req("192.0.2.1")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := &engine.Decision{Limits: make([]engine.LimitStatus, 0, 2)}
		for pb.Next() {
			d.Limits = d.Limits[:0]
			_ = f.Check(ctx, r, d)
		}
	})
}
