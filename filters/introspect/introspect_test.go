package introspect

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// server is a real RFC 7662 endpoint on loopback (HTTPS) with a token table.
type server struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens map[string]map[string]any
	status int
}

func newServer(t *testing.T) *server {
	s := &server{status: http.StatusOK, tokens: map[string]map[string]any{
		"good":      {"active": true, "sub": "alice", "scope": "read write", "aud": []string{"api"}, "iss": "https://as.test/", "exp": t0.Add(time.Hour).Unix()},
		"soon":      {"active": true, "sub": "bob", "aud": "api", "scope": "read", "iss": "https://as.test/", "exp": t0.Add(30 * time.Second).Unix()},
		"old-token": {"active": true, "sub": "carol", "aud": "api", "iss": "https://as.test/", "exp": t0.Add(-time.Second).Unix()},
		"otheraud":  {"active": true, "sub": "dave", "aud": "other", "iss": "https://as.test/"},
		"otheriss":  {"active": true, "sub": "erin", "aud": "api", "iss": "https://evil.test/"},
		"noscope":   {"active": true, "sub": "frank", "aud": "api", "iss": "https://as.test/", "scope": "write"},
		"revoked":   {"active": false},
		"truthy":    {"active": "true", "sub": "mallory"},
		"username":  {"active": true, "username": "gina", "aud": "api", "iss": "https://as.test/", "scope": "read"},
	}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	// RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if r.Method != http.MethodPost || !ok || id != "portcullis" || secret != "s3cret/+" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	status, m := s.status, s.tokens[r.PostFormValue("token")]
	s.mu.Unlock()
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	if m == nil {
		m = map[string]any{"active": false}
	}
	json.NewEncoder(w).Encode(m)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newAuth(t *testing.T, s *server, c *clock, mod func(*Options)) *Authenticator {
	t.Helper()
	o := Options{
		Name: "as", Endpoint: s.srv.URL + "/introspect", ClientID: "portcullis", ClientSecret: []byte("s3cret/+"),
		Issuer: "https://as.test/", Audiences: []string{"api"}, RequiredScopes: []string{"read"},
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}),
		Now:   c.Now,
	}
	if mod != nil {
		mod(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func auth(a *Authenticator, tok string) (*engine.Identity, error) {
	r := enginetest.NewRequest("GET", "/")
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return a.Authenticate(context.Background(), r)
}

func TestIntrospection(t *testing.T) {
	s := newServer(t)
	a := newAuth(t, s, &clock{now: t0}, nil)
	cases := []struct {
		tok, subject, reason string
		status               int
	}{
		{"good", "alice", "", 0},
		{"username", "gina", "", 0},
		{"old-token", "", ReasonExpired, 401},
		{"otheraud", "", ReasonAudience, 401},
		{"otheriss", "", ReasonIssuer, 401},
		{"noscope", "", ReasonScope, 403},
		{"revoked", "", ReasonInactive, 401},
		{"unknown", "", ReasonInactive, 401},
		{"truthy", "", ReasonInactive, 401},
		{"bad token!", "", ReasonMalformed, 401},
	}
	for _, tc := range cases {
		id, err := auth(a, tc.tok)
		if tc.reason == "" {
			if err != nil || id.Subject != tc.subject || id.Method != Method || !id.HasScope("read") {
				t.Errorf("%s: %v %+v", tc.tok, err, id)
			}
			continue
		}
		var den *engine.Denial
		if !errors.As(err, &den) || den.Reason != tc.reason || den.Status != tc.status {
			t.Errorf("%s: got %v, want %d %s", tc.tok, err, tc.status, tc.reason)
			continue
		}
		if ch := den.Header.Get("Www-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="as", error=`) || strings.Contains(ch, tc.tok) {
			t.Errorf("%s: challenge %q", tc.tok, ch)
		}
	}
	if _, err := auth(a, ""); !errors.Is(err, engine.ErrNoCredentials) {
		t.Fatalf("no token: %v", err)
	}
}

func TestCacheTTLs(t *testing.T) {
	s := newServer(t)
	c := &clock{now: t0}
	a := newAuth(t, s, c, func(o *Options) { o.CacheTTL, o.NegativeTTL = time.Minute, 5*time.Second })
	for i := 0; i < 3; i++ {
		auth(a, "good")
		auth(a, "revoked")
		auth(a, "soon")
	}
	if n := a.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want one per token", n)
	}
	c.add(10 * time.Second) // negative result expired, positives kept
	auth(a, "good")
	auth(a, "revoked")
	if n := a.calls.Load(); n != 4 {
		t.Fatalf("%d calls after the negative TTL, want 4", n)
	}
	c.add(25 * time.Second) // "soon" passed its exp (30s): never served from cache past exp
	if _, err := auth(a, "soon"); err == nil {
		t.Fatal("a token past its exp must not be served from the cache")
	}
	c.add(time.Minute) // the positive TTL ends
	auth(a, "good")
	if n := a.calls.Load(); n != 6 {
		t.Fatalf("%d calls after the TTL, want 6", n)
	}
}

func TestEndpointFailuresAreTechnical(t *testing.T) {
	s := newServer(t)
	a := newAuth(t, s, &clock{now: t0}, nil)
	s.mu.Lock()
	s.status = http.StatusInternalServerError
	s.mu.Unlock()
	for i := 0; i < 2; i++ {
		_, err := auth(a, "good")
		var den *engine.Denial
		if err == nil || errors.As(err, &den) {
			t.Fatalf("want a technical error, got %v", err)
		}
	}
	if a.calls.Load() != 2 || a.cache.len() != 0 {
		t.Fatal("failures must not be cached")
	}
	bad := newAuth(t, s, &clock{now: t0}, func(o *Options) { o.ClientSecret = []byte("wrong") })
	s.mu.Lock()
	s.status = http.StatusOK
	s.mu.Unlock()
	if _, err := auth(bad, "good"); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("rejected client credentials: %v", err)
	}
}

func TestConcurrentCallsShareOneRequest(t *testing.T) {
	s := newServer(t)
	a := newAuth(t, s, &clock{now: t0}, nil)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); auth(a, "good") }()
	}
	wg.Wait()
	if n := a.calls.Load(); n != 1 {
		t.Fatalf("%d endpoint calls for one token", n)
	}
}

func TestCacheBound(t *testing.T) {
	s := newServer(t)
	s.mu.Lock()
	for i := 0; i < 100; i++ {
		s.tokens[fmt.Sprint("t", i)] = map[string]any{"active": true, "sub": "x", "aud": "api", "iss": "https://as.test/", "scope": "read"}
	}
	s.mu.Unlock()
	a := newAuth(t, s, &clock{now: t0}, func(o *Options) { o.CacheSize = 10 })
	for i := 0; i < 100; i++ {
		if _, err := auth(a, fmt.Sprint("t", i)); err != nil {
			t.Fatal(err)
		}
		if a.cache.len() > 10 {
			t.Fatalf("cache grew to %d", a.cache.len())
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{}, {Name: "x"}, {Name: "x", Endpoint: "http://as.test/i"}, {Name: "x", Endpoint: "https://as.test/i", ClientSecret: []byte("s")}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
