package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/httpsig"
)

func TestParseDescriptor(t *testing.T) {
	tests := []struct {
		in      string
		want    []string // key=value per entry
		wantErr bool
	}{
		{"remote_address=127.0.0.1", []string{"remote_address=127.0.0.1"}, false},
		{"tenant=acme, user=alice", []string{"tenant=acme", "user=alice"}, false},
		{"path=", []string{"path="}, false},
		{"novalue", nil, true},
		{"=v", nil, true},
		{"a=1,,b=2", nil, true},
	}
	for _, tt := range tests {
		d, err := parseDescriptor(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		var got []string
		for _, e := range d.Entries {
			got = append(got, e.Key+"="+e.Value)
		}
		if strings.Join(got, ";") != strings.Join(tt.want, ";") {
			t.Errorf("%q: entries %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	h, err := parseHeaders([]string{"X-API-Key: pk_1", "Accept: a", "accept: b"})
	if err != nil {
		t.Fatal(err)
	}
	if h["x-api-key"] != "pk_1" || h["accept"] != "a,b" {
		t.Fatalf("headers %v", h)
	}
	if _, err := parseHeaders([]string{"no colon"}); err == nil {
		t.Fatal("header without a colon accepted")
	}
}

// Every pre-signed request carries its own signature and nonce, verifies against
// the body and target the CheckRequest describes, and the pool ends with errExhausted.
func TestSignedPool(t *testing.T) {
	secret := "bench-hmac-secret-0123456789abcdef"
	file := t.TempDir() + "/secret"
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config{path: "/api/items", maxRequests: 3, hmacKeyID: "k1", hmacSecretFile: file}
	body := []byte(strings.Repeat("x", 1024))
	pool, err := newSignedPool(c, http.MethodPost, body, map[string]string{"content-length": "1024"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := httpsig.NewHMACKey("k1", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	v, err := httpsig.NewVerifier(httpsig.NewKeySet(key), httpsig.Policy{
		Required: signedComponents, MaxAge: time.Minute, RequireNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 3 {
		req, err := pool.next()
		if err != nil {
			t.Fatal(err)
		}
		h := req.GetAttributes().GetRequest().GetHttp()
		if seen[h.Headers["signature"]] {
			t.Fatal("signature reused")
		}
		seen[h.Headers["signature"]] = true
		m := &httpsig.Message{Method: h.Method, Scheme: h.Scheme, Authority: h.Host, RawPath: h.Path,
			Header: http.Header{}, Body: h.RawBody}
		for k, val := range h.Headers {
			m.Header.Set(k, val)
		}
		if _, err := v.Verify(t.Context(), m); err != nil {
			t.Fatalf("pre-signed request does not verify: %v", err)
		}
	}
	if _, err := pool.next(); err != errExhausted {
		t.Fatalf("after the pool: %v, want errExhausted", err)
	}
}

func FuzzParseDescriptor(f *testing.F) {
	f.Add("remote_address=127.0.0.1")
	f.Add("a=1,b=2,c=")
	f.Add(",=,")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDescriptor(s)
		if err != nil {
			return
		}
		if len(d.Entries) != strings.Count(s, ",")+1 {
			t.Fatalf("%q: %d entries", s, len(d.Entries))
		}
		for _, e := range d.Entries {
			if e.Key == "" {
				t.Fatalf("%q: empty key", s)
			}
		}
	})
}

// With -target2 requests alternate between the two URLs, each with its own headers,
// and each side's latency is its own: a delay on one side shows only in its p50.
func TestInterleavedTargets(t *testing.T) {
	var gotA, gotB atomic.Int64
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Side") != "" {
			t.Errorf("side A got X-Side %q", r.Header.Get("X-Side"))
		}
		gotA.Add(1)
	}))
	defer srvA.Close()
	const delay = 5 * time.Millisecond
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Side") != "b" {
			t.Errorf("side B got X-Side %q", r.Header.Get("X-Side"))
		}
		gotB.Add(1)
		time.Sleep(delay)
	}))
	defer srvB.Close()
	// The request count bounds the run (about 0.5 s at this rate); the duration is
	// only a backstop, so a slow machine does not cut the run short.
	c := config{mode: "http", target: srvA.URL, target2: srvB.URL, headers2: headerFlags{"X-Side: b"},
		label: "a", label2: "b", concurrency: 8, duration: time.Minute, maxRequests: 200, rate: 400, expect: 200}
	dos, closeFn, err := newDoers(c)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	res := run(c, dos)
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	if a, b := gotA.Load(), gotB.Load(); a != 100 || b != 100 || res[0].n != 100 || res[1].n != 100 {
		t.Fatalf("requests A %d B %d, samples %d/%d; want 100 each", a, b, res[0].n, res[1].n)
	}
	if res[1].p50 < delay {
		t.Fatalf("side B p50 %v, below its %v delay", res[1].p50, delay)
	}
	if res[0].errors+res[1].errors != 0 {
		t.Fatalf("errors: %v %v", res[0].firstErr, res[1].firstErr)
	}
	for _, bad := range []struct {
		c    config
		want string
	}{
		{config{mode: "rls", target: "127.0.0.1:1", domain: "d", descs: headerFlags{"k=v"}, target2: "x", label2: "b"}, "needs -mode http"},
		{config{mode: "http", target: srvA.URL, target2: srvB.URL}, "-label2 other"},
		{config{mode: "http", target: srvA.URL, target2: srvB.URL, label: "a", label2: "a"}, "-label2 other"},
		{config{mode: "http", target: srvA.URL, label2: "b"}, "need -target2"},
		{config{mode: "http", target: srvA.URL, headers2: headerFlags{"X-Side: b"}}, "need -target2"},
	} {
		if _, _, err := newDoers(bad.c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err %v, want %q", bad.c, err, bad.want)
		}
	}
}
