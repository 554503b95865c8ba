package main

import (
	"net/http"
	"os"
	"strings"
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
