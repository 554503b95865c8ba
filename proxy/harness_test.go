package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// recorded is what the upstream received for one request.
type recorded struct {
	Method, RequestURI, Host, RemoteAddr string
	Header, Trailer                      http.Header
	Body                                 string
}

// recordingUpstream records every request it fully received and answers 200.
type recordingUpstream struct {
	*httptest.Server
	mu  sync.Mutex
	got []recorded
}

func newRecordingUpstream(t *testing.T) *recordingUpstream { return newUpstream(t, nil) }

// newUpstream starts a recording upstream; setup may replace its handler or hooks
// before it starts.
func newUpstream(t *testing.T, setup func(u *recordingUpstream, s *http.Server)) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.record))
	if setup != nil {
		setup(u, u.Config)
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) record(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body read failed", http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	u.got = append(u.got, recorded{
		Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, RemoteAddr: r.RemoteAddr,
		Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: string(body),
	})
	u.mu.Unlock()
	w.Header().Set("X-Request-Id", "set-by-upstream")
	w.Header().Set("X-Upstream", "1")
	_, _ = io.WriteString(w, "upstream ok")
}

func (u *recordingUpstream) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.got...)
}

// only returns the single request the upstream saw.
func (u *recordingUpstream) only(t *testing.T) recorded {
	t.Helper()
	got := u.requests()
	if len(got) != 1 {
		t.Fatalf("upstream saw %d requests, want 1: %+v", len(got), got)
	}
	return got[0]
}

func (u *recordingUpstream) sawNothing(t *testing.T) {
	t.Helper()
	if got := u.requests(); len(got) != 0 {
		t.Fatalf("upstream saw %d requests, want none: %+v", len(got), got)
	}
}

// testIdentity is what the fake API-key authenticator returns for "good-key".
var testIdentity = &engine.Identity{Subject: "alice", Method: engine.AuthAPIKey, KeyID: "k1", Scopes: []string{"read"}}

// apiKeyAuth is a behaving authenticator: X-Api-Key or ?api_key= must be "good-key".
var apiKeyAuth = engine.AuthenticatorFunc(func(_ context.Context, r *engine.Request) (*engine.Identity, error) {
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key, _ = r.QueryValue("api_key")
	}
	switch key {
	case "":
		return nil, engine.ErrNoCredentials
	case "good-key":
		return testIdentity, nil
	}
	return nil, engine.Deny(http.StatusUnauthorized, "apikey.unknown", "unknown API key")
})

// bodyFilter denies bodies containing "attack" (a miniature WAF).
var bodyFilter = engine.FilterFunc(func(_ context.Context, r *engine.Request, _ *engine.Decision) error {
	if !r.HasBody {
		return engine.Deny(http.StatusInternalServerError, "test.no_body", "")
	}
	if bytes.Contains(r.Body, []byte("attack")) {
		return engine.Deny(http.StatusForbidden, "waf.block", "blocked")
	}
	return nil
})

// peerFilter reports what the engine saw, as upstream headers and response headers.
var peerFilter = engine.FilterFunc(func(_ context.Context, r *engine.Request, d *engine.Decision) error {
	d.Upstream.SetHeader("x-test-client-ip", r.Peer.IP.String())
	d.Upstream.SetHeader("x-test-scheme", r.Scheme)
	d.Upstream.SetHeader("x-test-path", r.Path)
	d.SetResponseHeader("X-Test-Decorated", "yes")
	return nil
})

var denyAll = engine.FilterFunc(func(context.Context, *engine.Request, *engine.Decision) error {
	return engine.Deny(http.StatusForbidden, "admin.blocked", "admin is closed")
})

// testTable: /public/ anonymous, /api/ needs an API key, /body/ inspects 16 body bytes,
// /admin is always denied, /getonly/ matches GET only; nothing else matches (404).
func testTable(t testing.TB) *engine.RouteTable {
	t.Helper()
	decorate := []engine.Stage{{Name: "peer", Phase: engine.PhaseDecorate, Filter: peerFilter}}
	routes := []*engine.Route{
		{Name: "admin", Match: engine.Match{PathPrefix: "/admin"}, Pipeline: &engine.Pipeline{
			Name: "admin", Inspect: []engine.Stage{{Name: "deny", Phase: engine.PhaseInspect, Filter: denyAll}}}},
		{Name: "public", Match: engine.Match{PathPrefix: "/public/"}, Pipeline: &engine.Pipeline{
			Name: "public", Anonymous: true, Decorate: decorate}},
		{Name: "api", Match: engine.Match{PathPrefix: "/api/"}, Pipeline: &engine.Pipeline{
			Name: "api", Authenticate: []engine.Stage{{Name: "apikey", Phase: engine.PhaseAuthenticate, Auth: apiKeyAuth}},
			Challenges: []string{`ApiKey realm="test"`}, HideHeaders: []string{"x-api-key"},
			StripQuery: []string{"api_key"}, Decorate: decorate}},
		{Name: "body", Match: engine.Match{PathPrefix: "/body/"}, Pipeline: &engine.Pipeline{
			Name: "body", Anonymous: true, BodyLimit: 16,
			Inspect: []engine.Stage{{Name: "waf", Phase: engine.PhaseInspect, Filter: bodyFilter}}}},
		{Name: "getonly", Match: engine.Match{PathPrefix: "/getonly/", Methods: []string{"GET"}}, Pipeline: &engine.Pipeline{
			Name: "getonly", Anonymous: true}},
	}
	tbl, err := engine.NewRouteTable(routes, engine.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// harness is a proxy served on loopback in front of a recording upstream.
type harness struct {
	up   *recordingUpstream
	p    *Proxy
	addr string
	stop func() error // cancels Serve and returns its result
}

func startProxy(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	up := newRecordingUpstream(t)
	return startProxyTo(t, up, up.URL, mod)
}

func startProxyTo(t *testing.T, up *recordingUpstream, upstreamURL string, mod func(*Options)) *harness {
	t.Helper()
	u, err := url.Parse(upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Engine: engine.New(testTable(t)), Upstream: u, MaxHeaderBytes: 4096, MaxHeaderCount: 20}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return &harness{up: up, p: p, addr: ln.Addr().String(), stop: stop}
}

// rawResponse is one response read off a raw connection.
type rawResponse struct {
	*http.Response
	body string
}

// dial opens a connection to the proxy, closed when the test ends, with a safety
// deadline that turns a hang into a failure.
func (h *harness) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// send writes raw to a new connection and reads responses until the server closes it
// (every test request ends with Connection: close or a rejection). A safety deadline
// turns a hang into a failure.
func (h *harness) send(t *testing.T, raw string) []rawResponse {
	t.Helper()
	c := h.dial(t)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponses(t, bufio.NewReader(c))
}

func readResponses(t *testing.T, br *bufio.Reader) []rawResponse {
	t.Helper()
	var out []rawResponse
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return out
			}
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil && !isReset(err) {
			t.Fatalf("reading body %d: %v", len(out)+1, err)
		}
		out = append(out, rawResponse{res, string(b)})
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// statuses lists the status codes of rs.
func statuses(rs []rawResponse) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.StatusCode
	}
	return out
}

func wantStatuses(t *testing.T, rs []rawResponse, want ...int) {
	t.Helper()
	got := statuses(rs)
	if len(got) != len(want) {
		t.Fatalf("statuses %v, want %v (bodies %v)", got, want, bodies(rs))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v (bodies %v)", got, want, bodies(rs))
		}
	}
}

func bodies(rs []rawResponse) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.body
	}
	return out
}

// get is a raw GET with Connection: close and the given extra header lines.
func get(target string, headers ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: app.example\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}
