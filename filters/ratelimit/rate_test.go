package ratelimit

import (
	"bytes"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		n    uint64
		per  time.Duration
		fail bool
	}{
		{in: "100/s", n: 100, per: time.Second},
		{in: "1000/min", n: 1000, per: time.Minute},
		{in: " 5 / h ", n: 5, per: time.Hour},
		{in: "10000/day", n: 10000, per: 24 * time.Hour},
		{in: "1/second", n: 1, per: time.Second},
		{in: "0/s", fail: true},
		{in: "-1/s", fail: true},
		{in: "100", fail: true},
		{in: "100/week", fail: true},
		{in: "1e3/s", fail: true},
		{in: "99999999999/s", fail: true},
		{in: "", fail: true},
	}
	for _, tc := range tests {
		n, per, err := ParseRate(tc.in)
		if (err != nil) != tc.fail || n != tc.n || per != tc.per {
			t.Errorf("ParseRate(%q) = %d, %v, %v", tc.in, n, per, err)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "5/h", "1/day", "x/y", "/", "1000000000/s", "1/min/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, per, err := ParseRate(s)
		if err != nil {
			return
		}
		if n == 0 || per <= 0 || uint64(per) < n {
			t.Fatalf("ParseRate(%q) accepted an unusable rate %d/%v", s, n, per)
		}
	})
}

func TestParseKeyPart(t *testing.T) {
	for k := KeyIP; k <= KeyPath; k++ {
		if got, err := ParseKeyPart(k.String()); err != nil || got != k {
			t.Errorf("round trip %v: %v %v", k, got, err)
		}
	}
	if _, err := ParseKeyPart("cookie"); err == nil {
		t.Error("unknown part accepted")
	}
}

// FuzzKeyInjective: two requests whose keyed values differ get different keys (the
// encoding is length-prefixed, so no concatenation of values can imitate another).
func FuzzKeyInjective(f *testing.F) {
	f.Add("alice", "GET", "bob", "GET")
	f.Add("a", "bGET", "ab", "GET")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, sub1, m1, sub2, m2 string) {
		l := &limit{name: "n", parts: []KeyPart{KeySubject, KeyMethod, KeyIP}}
		key := func(sub, m string) []byte {
			r := &engine.Request{Method: m, Header: http.Header{}, Peer: engine.Peer{IP: netip.MustParseAddr("192.0.2.1")}}
			return l.appendKey(nil, r, &engine.Decision{Identity: &engine.Identity{Subject: sub}})
		}
		k1, k2 := key(sub1, m1), key(sub2, m2)
		long := len(sub1) > maxRaw || len(sub2) > maxRaw || len(m1) > maxRaw || len(m2) > maxRaw
		if !long && (sub1 != sub2 || m1 != m2) && bytes.Equal(k1, k2) {
			t.Fatalf("distinct values share key %q", k1)
		}
		if (sub1 == sub2 && m1 == m2) && !bytes.Equal(k1, k2) {
			t.Fatal("same values, different keys")
		}
	})
}
