package jwt

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// jwksServer is a real HTTPS JWKS (and discovery) endpoint on loopback whose behaviour
// the test changes: body, status, a stall, a redirect.
type jwksServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	stall   bool
	cc      string
	discoIs string        // issuer announced by discovery ("" = the server URL)
	hold    chan struct{} // when set, a JWKS fetch waits for it to close
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil && r.URL.Path == "/jwks" {
		s.fetches.Add(1)
		select { // bounded for the test's sake
		case <-hold:
		case <-time.After(10 * time.Second):
		}
		s.fetches.Add(-1) // counted once, below
	}
	s.mu.Lock()
	body, status, stall, cc, iss := s.body, s.status, s.stall, s.cc, s.discoIs
	s.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		if iss == "" {
			iss = s.srv.URL
		}
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, iss, s.srv.URL+"/jwks")
		return
	case "/redirect":
		http.Redirect(w, r, "http://"+r.Host+"/jwks", http.StatusFound)
		return
	}
	s.fetches.Add(1)
	if stall {
		select { // longer than the client timeout, bounded for the test's sake
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.WriteHeader(status)
	w.Write(body)
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *jwksServer) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func remoteAuth(t *testing.T, s *jwksServer, clock *testClock, mod func(*Options)) *Authenticator {
	t.Helper()
	o := Options{
		Name: "remote", Issuer: "https://issuer.test/", Audiences: []string{"api"},
		Keys: KeysOptions{URL: s.srv.URL + "/jwks", Remote: RemoteOptions{
			CAPEM: s.caPEM(), WaitFirstFetch: true, Timeout: 500 * time.Millisecond, MaxResponseBytes: 64 << 10,
		}},
		Now: clock.Now,
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

func authErr(a *Authenticator, tok string) error {
	_, err := a.Authenticate(context.Background(), bearerRequest(tok))
	return err
}

func reasonOf(err error) string {
	var den *engine.Denial
	if errors.As(err, &den) {
		return den.Reason
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// TestRemoteRotation walks a key rotation against a real HTTPS JWKS server: key
// added, key removed, garbage response, oversized response, slow server, server down.
func TestRemoteRotation(t *testing.T) {
	ka, kb := newKey(t, ES256, "a"), newKey(t, ES256, "b")
	s := newJWKSServer(t, jwks(t, ka))
	clock := &testClock{now: testNow}
	a := remoteAuth(t, s, clock, nil)
	ctx := context.Background()
	if a.Ready() {
		t.Fatal("ready before Start")
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tokA, tokB := ka.token(t, claims(nil)), kb.token(t, claims(nil))
	if err := authErr(a, tokA); err != nil {
		t.Fatal(err)
	}

	// Key added: the unknown kid triggers one early refresh and then verifies.
	s.set(func(s *jwksServer) { s.body = jwks(t, ka, kb) })
	if err := authErr(a, tokB); err != nil {
		t.Fatalf("new key: %v", err)
	}

	// Key removed: its cached tokens leave the cache and stop verifying.
	s.set(func(s *jwksServer) { s.body = jwks(t, kb) })
	if err := a.remote.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := reasonOf(authErr(a, tokA)); got != ReasonUnknownKid {
		t.Fatalf("removed key: %s", got)
	}
	if n := a.cache.Len(); n != 1 {
		t.Fatalf("cache holds %d entries, want only the token of key b", n)
	}

	failures := []struct {
		name string
		f    func(s *jwksServer)
	}{
		{"garbage", func(s *jwksServer) { s.body = []byte("<html>oops</html>") }},
		{"policy violation", func(s *jwksServer) { s.body = []byte(`{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}`) }},
		{"oversized", func(s *jwksServer) { s.body = []byte(strings.Repeat(" ", 65<<10) + string(jwks(t, kb))) }},
		{"status 500", func(s *jwksServer) { s.status = http.StatusInternalServerError }},
		{"slow", func(s *jwksServer) { s.status, s.stall = http.StatusOK, true }},
	}
	for _, f := range failures {
		s.set(f.f)
		if err := a.remote.Refresh(ctx); err == nil {
			t.Fatalf("%s: refresh succeeded", f.name)
		}
		st := a.Status()
		if st.LastError == nil || st.Keys != 1 || st.LastSuccess.IsZero() {
			t.Fatalf("%s: status %+v", f.name, st)
		}
		if err := authErr(a, tokB); err != nil {
			t.Fatalf("%s: last good set must stay in use: %v", f.name, err)
		}
	}

	// Server down.
	s.srv.Close()
	if err := a.remote.Refresh(ctx); err == nil {
		t.Fatal("refresh against a closed server succeeded")
	}
	if err := authErr(a, tokB); err != nil || !a.Ready() {
		t.Fatalf("server down: %v", err)
	}
}

// TestUnknownKidFloodOneFetch: a flood of random kids costs one fetch per interval.
func TestUnknownKidFloodOneFetch(t *testing.T) {
	k := newKey(t, ES256, "a")
	s := newJWKSServer(t, jwks(t, k))
	clock := &testClock{now: testNow}
	a := remoteAuth(t, s, clock, nil)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := s.fetches.Load()
	for i := 0; i < 50; i++ {
		tok := k.raw(t, fmt.Sprintf(`{"alg":"ES256","kid":"random-%d"}`, i), mustJSON(t, claims(nil)))
		if got := reasonOf(authErr(a, tok)); got != ReasonUnknownKid {
			t.Fatalf("kid %d: %s", i, got)
		}
	}
	if n := s.fetches.Load() - base; n != 1 {
		t.Fatalf("%d fetches for 50 unknown kids, want 1", n)
	}
	clock.Add(DefaultUnknownKIDInterval + time.Second)
	authErr(a, k.raw(t, `{"alg":"ES256","kid":"random-x"}`, mustJSON(t, claims(nil))))
	if n := s.fetches.Load() - base; n != 2 {
		t.Fatalf("after the interval: %d fetches, want 2", n)
	}
}

func TestRemoteNotReady(t *testing.T) {
	k := newKey(t, ES256, "a")
	s := newJWKSServer(t, nil)
	s.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	a := remoteAuth(t, s, &testClock{now: testNow}, nil)
	if err := a.Start(context.Background()); err == nil {
		t.Fatal("start must report the failed first fetch")
	}
	if a.Ready() {
		t.Fatal("ready without keys")
	}
	err := authErr(a, k.token(t, claims(nil)))
	var den *engine.Denial
	if !errors.Is(err, ErrNoKeys) || errors.As(err, &den) {
		t.Fatalf("want the technical ErrNoKeys, got %v", err)
	}
}

func TestDiscovery(t *testing.T) {
	k := newKey(t, ES256, "a")
	s := newJWKSServer(t, jwks(t, k))
	clock := &testClock{now: testNow}
	a := remoteAuth(t, s, clock, func(o *Options) {
		o.Issuer, o.Keys.URL, o.Keys.Discovery = s.srv.URL, "", true
	})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.URL != s.srv.URL+"/jwks" || st.Keys != 1 {
		t.Fatalf("status %+v", st)
	}
	if err := authErr(a, k.token(t, claims(map[string]any{"iss": s.srv.URL}))); err != nil {
		t.Fatal(err)
	}

	s2 := newJWKSServer(t, jwks(t, k))
	s2.set(func(s *jwksServer) { s.discoIs = "https://evil.test" })
	b := remoteAuth(t, s2, clock, func(o *Options) { o.Issuer, o.Keys.URL, o.Keys.Discovery = s2.srv.URL, "", true })
	if err := b.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("a discovery document for another issuer must be refused: %v", err)
	}
}

func TestRemoteTLSAndRedirects(t *testing.T) {
	k := newKey(t, ES256, "a")
	s := newJWKSServer(t, jwks(t, k))
	clock := &testClock{now: testNow}
	untrusted := remoteAuth(t, s, clock, func(o *Options) { o.Keys.Remote.CAPEM = nil })
	if err := untrusted.Start(context.Background()); err == nil {
		t.Fatal("a server outside the trusted roots must be refused")
	}
	redirected := remoteAuth(t, s, clock, func(o *Options) { o.Keys.URL = s.srv.URL + "/redirect" })
	if err := redirected.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "https is required") {
		t.Fatalf("a redirect to http must be refused: %v", err)
	}
}

func TestRefreshInterval(t *testing.T) {
	o := RemoteOptions{}.withDefaults()
	cases := map[string]time.Duration{
		"":                          DefaultRefresh,
		"max-age=300":               300 * time.Second,
		"public, max-age=5":         DefaultMinRefresh,
		"max-age=999999":            DefaultMaxRefresh,
		"no-store":                  DefaultMinRefresh,
		"max-age=abc":               DefaultRefresh,
		`private, MAX-AGE="1200"`:   1200 * time.Second,
		"max-age=-5, max-age=600":   600 * time.Second,
		"max-age=99999999999999999": DefaultMaxRefresh,
	}
	for cc, want := range cases {
		if got := refreshInterval(cc, o); got != want {
			t.Errorf("%q: %v want %v", cc, got, want)
		}
	}
}

func TestCarryOverKeepsUnchangedKeys(t *testing.T) {
	ka, kb := newKey(t, ES256, "a"), newKey(t, ES256, "b")
	r, err := NewRemoteKeys("x", "https://keys.test/jwks", "", RemoteOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := must(ParseKeySet(jwks(t, ka, kb)))
	r.publish(first)
	keyA, keyB := first.byKID["a"], first.byKID["b"]
	second := must(ParseKeySet(jwks(t, kb)))
	if !r.publish(second) {
		t.Fatal("dropping a key must report retirement")
	}
	if second.byKID["b"] != keyB || keyB.Retired() || !keyA.Retired() {
		t.Fatal("b must be carried over, a retired")
	}
}
