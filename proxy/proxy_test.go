package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

func TestNewValidatesOptions(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1")
	eng := engine.New(nil)
	for name, o := range map[string]Options{
		"no engine":       {Upstream: u},
		"no upstream":     {Engine: eng},
		"bad scheme":      {Engine: eng, Upstream: &url.URL{Scheme: "ftp", Host: "x"}},
		"negative limits": {Engine: eng, Upstream: u, MaxBodyBytes: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	p, err := New(Options{Engine: eng, Upstream: u})
	if err != nil {
		t.Fatal(err)
	}
	if tr := p.rp.Transport.(*http.Transport); tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost || !tr.DisableCompression || tr.Proxy != nil {
		t.Errorf("default transport: idle per host %d, compression off %v", tr.MaxIdleConnsPerHost, tr.DisableCompression)
	}
}

type errorBody struct {
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

func decodeError(t *testing.T, r rawResponse) errorBody {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var e errorBody
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.RequestID == "" || r.Header.Get("X-Request-Id") != e.RequestID {
		t.Fatalf("request id: body %q, header %q", e.RequestID, r.Header.Get("X-Request-Id"))
	}
	return e
}

func TestDenyBody(t *testing.T) {
	h := startProxy(t, nil)
	tests := []struct {
		name, raw string
		status    int
		reason    string
	}{
		{"no credential", get("/api/x"), 401, "auth.missing"},
		{"bad credential", get("/api/x", "X-Api-Key: nope"), 401, "apikey.unknown"},
		{"no route", get("/elsewhere"), 404, "route.none"},
		{"stage denial", get("/admin/users"), 403, "admin.blocked"},
	}
	for _, tt := range tests {
		rs := h.send(t, tt.raw)
		wantStatuses(t, rs, tt.status)
		e := decodeError(t, rs[0])
		if e.Reason != tt.reason || e.Error == "" {
			t.Errorf("%s: body %+v, want reason %s", tt.name, e, tt.reason)
		}
	}
	rs := h.send(t, get("/api/x"))
	if got := rs[0].Header.Get("Www-Authenticate"); got != `ApiKey realm="test"` {
		t.Errorf("challenge %q", got)
	}
	h.up.sawNothing(t)
}

func TestRequestID(t *testing.T) {
	h := startProxy(t, nil)
	rs := h.send(t, get("/public/a", "X-Request-Id: abc-123"))
	wantStatuses(t, rs, 200)
	if got := rs[0].Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "abc-123" {
		t.Errorf("client got request ids %q (the upstream's must not leak)", got)
	}
	if got := h.up.only(t).Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "abc-123" {
		t.Errorf("upstream got request ids %q", got)
	}

	rs = h.send(t, get("/public/b", "X-Request-Id: bad id <script>", "X-Request-Id: second"))
	id := rs[0].Header.Get("X-Request-Id")
	if !telemetry.ValidRequestID(id) || len(id) != 36 {
		t.Errorf("generated id %q", id)
	}
	if up := h.up.requests()[1].Header.Values("X-Request-Id"); len(up) != 1 || up[0] != id {
		t.Errorf("upstream ids %q, client id %q", up, id)
	}

	rs = h.send(t, get("/nowhere", "X-Request-Id: keep.me"))
	if e := decodeError(t, rs[0]); e.RequestID != "keep.me" {
		t.Errorf("deny request id %q", e.RequestID)
	}
}

// Inbound identity headers never reach the upstream, in any case or number, and a
// Connection header naming them cannot delete what the proxy sets (PROXY.md §5, §6).
func TestIdentitySpoofing(t *testing.T) {
	h := startProxy(t, nil)
	rs := h.send(t, get("/api/x", "X-Api-Key: good-key",
		"X-Portcullis-Subject: root", "x-portcullis-subject: root2", "X-PORTCULLIS-AUTH: jwt",
		"X-Portcullis-Role: admin", "X_Portcullis_Subject: root3", "X_Forwarded_For: 6.6.6.6",
		"Connection: x-portcullis-subject, X-Portcullis-Auth"))
	wantStatuses(t, rs, 200)
	up := h.up.only(t)
	if got := up.Header.Values("X-Portcullis-Subject"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("subject %q", got)
	}
	if got := up.Header.Values("X-Portcullis-Auth"); len(got) != 1 || got[0] != "apikey" {
		t.Errorf("auth %q", got)
	}
	for _, k := range []string{"X-Portcullis-Role", "X-Api-Key", "X_portcullis_subject", "X_forwarded_for"} {
		if v, ok := up.Header[k]; ok {
			t.Errorf("%s reached the upstream: %q", k, v)
		}
	}
	if got := up.Header.Get("X-Portcullis-Key-Id"); got != "k1" {
		t.Errorf("key id %q", got)
	}

	// Anonymous routes too: nothing claims an identity.
	h.send(t, get("/public/x", "X-Portcullis-Subject: root"))
	if got := h.up.requests()[1].Header.Get("X-Portcullis-Subject"); got != "" {
		t.Errorf("anonymous request carried subject %q", got)
	}
}

func TestQueryCredentialStripped(t *testing.T) {
	h := startProxy(t, nil)
	wantStatuses(t, h.send(t, get("/api/x?a=1&api_key=good-key&b=%20x&api_key=again")), 200)
	if got := h.up.only(t).RequestURI; got != "/api/x?a=1&b=%20x" {
		t.Errorf("upstream URI %q", got)
	}
}

func TestDecisionHeaders(t *testing.T) {
	h := startProxy(t, nil)
	rs := h.send(t, get("/public/./a//b"))
	wantStatuses(t, rs, 200)
	if rs[0].Header.Get("X-Test-Decorated") != "yes" || rs[0].Header.Get("X-Upstream") != "1" || rs[0].body != "upstream ok" {
		t.Errorf("client response %v %q", rs[0].Header, rs[0].body)
	}
	up := h.up.only(t)
	if up.RequestURI != "/public/a/b" || up.Header.Get("X-Test-Path") != "/public/a/b" {
		t.Errorf("upstream path %q, policy path %q", up.RequestURI, up.Header.Get("X-Test-Path"))
	}
	if up.Host != "app.example" || up.Header.Get("X-Forwarded-Host") != "app.example" ||
		up.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("host %q, forwarded %v", up.Host, up.Header)
	}
}

func TestBodyInspection(t *testing.T) {
	h := startProxy(t, func(o *Options) { o.MaxBodyBytes = 64 })
	post := func(body string, extra ...string) string {
		var b strings.Builder
		b.WriteString("POST /body/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n")
		for _, e := range extra {
			b.WriteString(e + "\r\n")
		}
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
		return b.String()
	}
	wantStatuses(t, h.send(t, post("an attack here")), 403)
	h.up.sawNothing(t)
	long := "0123456789abcdef-beyond-the-limit-attack"
	wantStatuses(t, h.send(t, post(long)), 200) // "attack" lies past the 16 inspected bytes
	wantStatuses(t, h.send(t, post("short")), 200)
	got := h.up.requests()
	if len(got) != 2 || got[0].Body != long || got[1].Body != "short" {
		t.Fatalf("upstream bodies %+v", got)
	}
	// Over the global cap: refused before reading (declared) or while reading (chunked).
	rs := h.send(t, post(strings.Repeat("x", 65)))
	wantStatuses(t, rs, 413)
	chunk := strings.Repeat("y", 70)
	rs = h.send(t, "POST /body/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n46\r\n"+chunk+"\r\n0\r\n\r\n")
	wantStatuses(t, rs, 413)
	if e := decodeError(t, rs[0]); e.Reason != "body.too_large" {
		t.Errorf("reason %q", e.Reason)
	}
	// A route that does not inspect bodies streams them, still under the cap.
	rs = h.send(t, "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n46\r\n"+chunk+"\r\n0\r\n\r\n")
	wantStatuses(t, rs, 413)
	if n := len(h.up.requests()); n != 2 {
		t.Errorf("upstream completed %d requests, want 2", n)
	}
}

func TestForwardedFor(t *testing.T) {
	untrusted := startProxy(t, nil)
	wantStatuses(t, untrusted.send(t, get("/public/x", "X-Forwarded-For: 6.6.6.6", "X-Real-IP: 6.6.6.6",
		"True-Client-IP: 6.6.6.6", "CF-Connecting-IP: 6.6.6.6", "X-Original-URL: /admin", "X-Rewrite-URL: /admin",
		"Forwarded: for=6.6.6.6", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil")), 200)
	up := untrusted.up.only(t)
	if got := up.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("untrusted: X-Forwarded-For %q", got)
	}
	if up.Header.Get("X-Test-Client-Ip") != "127.0.0.1" || up.Header.Get("X-Test-Scheme") != "http" ||
		up.Header.Get("X-Forwarded-Host") != "app.example" || up.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("untrusted: engine/upstream view %v", up.Header)
	}
	for _, k := range []string{"X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "X-Original-Url", "X-Rewrite-Url", "Forwarded"} {
		if v, ok := up.Header[k]; ok {
			t.Errorf("untrusted: %s passed: %q", k, v)
		}
	}

	trusted := startProxy(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	})
	wantStatuses(t, trusted.send(t, get("/public/x", "X-Forwarded-For: 6.6.6.6, 5.5.5.5", "X-Forwarded-For: 10.1.1.1",
		"X-Real-IP: 5.5.5.5", "X-Forwarded-Proto: https")), 200)
	up = trusted.up.only(t)
	if got := up.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "5.5.5.5, 10.1.1.1, 127.0.0.1" {
		t.Errorf("trusted: X-Forwarded-For %q", got)
	}
	if up.Header.Get("X-Test-Client-Ip") != "5.5.5.5" || up.Header.Get("X-Test-Scheme") != "https" ||
		up.Header.Get("X-Real-Ip") != "5.5.5.5" {
		t.Errorf("trusted: engine/upstream view %v", up.Header)
	}
}

func TestUpstreamFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	h := startProxyTo(t, newRecordingUpstream(t), dead, nil)
	rs := h.send(t, get("/public/x", "X-Request-Id: r-502"))
	wantStatuses(t, rs, 502)
	if e := decodeError(t, rs[0]); e.Reason != "upstream.unavailable" || e.RequestID != "r-502" {
		t.Errorf("502 body %+v", e)
	}

	release := make(chan struct{})
	slow := newUpstream(t, func(_ *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release })
	})
	t.Cleanup(func() { close(release) })
	h = startProxyTo(t, slow, slow.URL, func(o *Options) { o.ResponseHeaderTimeout = 50 * time.Millisecond })
	rs = h.send(t, get("/public/x"))
	wantStatuses(t, rs, 504)
	if e := decodeError(t, rs[0]); e.Reason != "upstream.timeout" {
		t.Errorf("504 body %+v", e)
	}
}

// Every decision is logged once, denies are audited, and credentials never appear.
func TestDecisionLogAndAudit(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	logger := zap.New(core)
	h := startProxy(t, func(o *Options) {
		o.Log = telemetry.NewDecisionLog(logger)
		o.Audit = telemetry.NewAudit(logger)
		o.Logger = logger
	})
	wantStatuses(t, h.send(t, get("/api/x", "X-Api-Key: good-key", "X-Request-Id: ok-1")), 200)
	wantStatuses(t, h.send(t, get("/api/x?api_key=secret-in-query", "X-Api-Key: secret-wrong-key", "X-Request-Id: no-2")), 401)
	wantStatuses(t, h.send(t, "GET /public/x HTTP/1.1\nHost: a\n\n"), 400)

	decisions := logs.FilterLoggerName("decision").All()
	if len(decisions) != 3 {
		t.Fatalf("%d decision lines, want 3", len(decisions))
	}
	first := decisions[0].ContextMap()
	if first["request_id"] != "ok-1" || first["allow"] != true || first["subject"] != "alice" || first["frontend"] != "proxy" {
		t.Errorf("allow line %v", first)
	}
	audits := logs.FilterLoggerName("audit").All()
	if len(audits) != 2 || audits[0].ContextMap()["reason"] != "apikey.unknown" || audits[1].ContextMap()["reason"] != "framing.bare_lf" {
		t.Fatalf("audit events %v", audits)
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, "secret") || strings.Contains(line, "good-key") {
			t.Errorf("credential in log: %s", line)
		}
	}
}

func TestSendUpstreamHost(t *testing.T) {
	h := startProxy(t, func(o *Options) { o.SendUpstreamHost = true })
	wantStatuses(t, h.send(t, get("/public/x")), 200)
	up := h.up.only(t)
	if want := strings.TrimPrefix(h.up.URL, "http://"); up.Host != want || up.Header.Get("X-Forwarded-Host") != "app.example" {
		t.Errorf("host %q (want %q), forwarded host %q", up.Host, want, up.Header.Get("X-Forwarded-Host"))
	}
}

// As a plain handler (no raw scanner in front), the checks that need no raw bytes
// still hold, and the scanner's reserved method is refused rather than trusted.
func TestHandlerWithoutServe(t *testing.T) {
	up := newRecordingUpstream(t)
	target, _ := url.Parse(up.URL)
	p, err := New(Options{Engine: engine.New(testTable(t)), Upstream: target})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	for method, want := range map[string]int{rejectMethod: 400, "TRACE": 405, "GET": 200} {
		req, _ := http.NewRequest(method, srv.URL+"/public/x", nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: status %d, want %d", method, res.StatusCode, want)
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
}
