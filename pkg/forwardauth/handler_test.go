package forwardauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

var (
	trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}
	banned  = netip.MustParseAddr("198.51.100.66")
	alice   = &engine.Identity{Subject: "alice", Method: engine.AuthAPIKey, KeyID: "k1", Scopes: []string{"read"}}
)

// newTestEngine: "api" (/api/) needs a bearer token; "public" (/public/) is anonymous;
// "write" (/things, DELETE only) is anonymous; "body" (/body/) reports the body it saw
// (limit 8 bytes). Every route bans 198.51.100.66 in the inspect phase.
func newTestEngine(t testing.TB) *engine.Engine {
	t.Helper()
	ban := enginetest.Stage("ip", engine.PhaseInspect, engine.FilterFunc(
		func(_ context.Context, r *engine.Request, _ *engine.Decision) error {
			if r.Peer.IP == banned {
				return engine.Deny(http.StatusForbidden, "ip.denied", "")
			}
			return nil
		}))
	bodyInfo := enginetest.Stage("bodyinfo", engine.PhaseDecorate, engine.FilterFunc(
		func(_ context.Context, r *engine.Request, d *engine.Decision) error {
			d.Upstream.SetHeader("x-body", string(r.Body))
			d.Upstream.SetHeader("x-body-has", strconv.FormatBool(r.HasBody))
			d.Upstream.SetHeader("x-body-truncated", strconv.FormatBool(r.BodyTruncated))
			return nil
		}))
	anon := func(name string, extra ...engine.Stage) *engine.Pipeline {
		return &engine.Pipeline{Name: name, Anonymous: true, Inspect: []engine.Stage{ban}, Decorate: extra}
	}
	body := anon("body", bodyInfo)
	body.BodyLimit = 8
	routes := []*engine.Route{
		{Name: "api", Match: engine.Match{PathPrefix: "/api/"}, Pipeline: &engine.Pipeline{
			Name: "api", Inspect: []engine.Stage{ban},
			Authenticate: []engine.Stage{enginetest.Stage("token", engine.PhaseAuthenticate, enginetest.TokenAuth{"alice-token": alice})},
			Challenges:   []string{`Bearer realm="api"`, `ApiKey realm="api"`},
		}},
		{Name: "public", Match: engine.Match{PathPrefix: "/public/"}, Pipeline: anon("public")},
		{Name: "write", Match: engine.Match{PathExact: "/things", Methods: []string{"DELETE"}}, Pipeline: anon("write")},
		{Name: "body", Match: engine.Match{PathPrefix: "/body/"}, Pipeline: body},
	}
	tbl, err := engine.NewRouteTable(routes, engine.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(tbl)
}

func newHandler(t testing.TB) *Handler {
	log := zap.NewNop()
	return New(Options{Engine: newTestEngine(t), TrustedProxies: trusted,
		Log: telemetry.NewDecisionLog(log), Audit: telemetry.NewAudit(log)})
}

// dialect headers describing an original request.
func traefik(method, uri, host string) map[string]string {
	return map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Uri": uri,
		"X-Forwarded-Host": host, "X-Forwarded-Proto": "https"}
}

func caddy(method, uri, host string) map[string]string { return traefik(method, uri, host) }

func nginx(method, uri, _ string) map[string]string {
	return map[string]string{"X-Original-Method": method, "X-Original-URI": uri}
}

type authCase struct {
	name   string
	remote string
	target string // the forward-auth request's own target
	host   string
	hdr    map[string]string
	body   string
	status int
	want   map[string]string // response headers that must have exactly this value
	absent []string          // response headers that must not be present
	reason string            // deny reason in the JSON body
}

func TestForwardAuth(t *testing.T) {
	h := newHandler(t)
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	cases := []authCase{}
	for name, dialect := range map[string]func(string, string, string) map[string]string{"traefik": traefik, "caddy": caddy, "nginx": nginx} {
		cases = append(cases,
			authCase{name: name + "/allow with identity", remote: "10.0.0.5:4000", target: "/auth", host: "api.example.com",
				hdr:    with(dialect("GET", "/api/items?x=1", "api.example.com"), "Authorization", "Bearer alice-token", "X-Request-Id", "req-1"),
				status: 200, want: map[string]string{"X-Portcullis-Subject": "alice", "X-Portcullis-Auth": "apikey",
					"X-Portcullis-Key-Id": "k1", "X-Portcullis-Scopes": "read", "X-Request-Id": "req-1"}},
			authCase{name: name + "/spoofed identity headers", remote: "10.0.0.5:4000", target: "/auth", host: "api.example.com",
				hdr: with(dialect("GET", "/api/items", "api.example.com"), "Authorization", "Bearer alice-token",
					"X-Portcullis-Subject", "mallory", "X-Portcullis-Claim-Admin", "true"),
				status: 200, want: map[string]string{"X-Portcullis-Subject": "alice"}, absent: []string{"X-Portcullis-Claim-Admin"}},
			authCase{name: name + "/missing credentials", remote: "10.0.0.5:4000", target: "/auth",
				hdr: dialect("GET", "/api/items", "api.example.com"), status: 401, reason: "auth.missing"},
			authCase{name: name + "/method from the proxy", remote: "10.0.0.5:4000", target: "/auth",
				hdr: dialect("DELETE", "/things", "api.example.com"), status: 200, want: map[string]string{"X-Portcullis-Auth": "anonymous"}},
			authCase{name: name + "/client ip through trusted proxy", remote: "10.0.0.5:4000", target: "/auth",
				hdr: with(dialect("GET", "/public/x", "api.example.com"), "X-Forwarded-For", "198.51.100.66, 10.0.0.9"), status: 403, reason: "ip.denied"},
			authCase{name: name + "/encoded slash", remote: "10.0.0.5:4000", target: "/auth",
				hdr: dialect("GET", "/public/..%2fapi/x", "api.example.com"), status: 400, reason: "path.invalid"},
		)
	}
	cases = append(cases,
		authCase{name: "untrusted peer: forwarded headers ignored", remote: "203.0.113.50:4000", target: "/auth",
			hdr: traefik("GET", "/public/x", "api.example.com"), status: 404, reason: "route.none"},
		authCase{name: "untrusted peer: nginx headers ignored", remote: "203.0.113.50:4000", target: "/auth",
			hdr: nginx("DELETE", "/things", ""), status: 404, reason: "route.none"},
		authCase{name: "untrusted peer: evaluated as itself", remote: "203.0.113.50:4000", target: "/public/x",
			hdr: map[string]string{"X-Forwarded-For": "198.51.100.66"}, status: 200, want: map[string]string{"X-Portcullis-Auth": "anonymous"}},
		authCase{name: "untrusted peer: own ip banned", remote: "198.51.100.66:4000", target: "/public/x", status: 403, reason: "ip.denied"},
		authCase{name: "absolute uri refused", remote: "10.0.0.5:4000", target: "/auth",
			hdr: traefik("GET", "http://evil/api/x", "api.example.com"), status: 400, reason: "path.invalid"},
		authCase{name: "body forwarded and truncated", remote: "10.0.0.5:4000", target: "/auth",
			hdr: traefik("POST", "/body/x", "h"), body: "0123456789abcdef", status: 200,
			want: map[string]string{"X-Body": "01234567", "X-Body-Has": "true", "X-Body-Truncated": "true"}},
		authCase{name: "body not forwarded by the proxy", remote: "10.0.0.5:4000", target: "/auth",
			hdr: traefik("POST", "/body/x", "h"), status: 200,
			want: map[string]string{"X-Body": "", "X-Body-Has": "false", "X-Body-Truncated": "false"}},
		authCase{name: "empty body of a direct call is known", remote: "203.0.113.50:4000", target: "/body/x", status: 200,
			want: map[string]string{"X-Body-Has": "true"}},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runCase(t, h, tc) })
	}
}

func runCase(t *testing.T, h http.Handler, tc authCase) {
	t.Helper()
	var body io.Reader
	if tc.body != "" {
		body = strings.NewReader(tc.body)
	}
	req := httptest.NewRequest(http.MethodGet, tc.target, body)
	req.RemoteAddr = tc.remote
	if tc.host != "" {
		req.Host = tc.host
	}
	for k, v := range tc.hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	if res.StatusCode != tc.status {
		t.Fatalf("status %d, want %d; body %s", res.StatusCode, tc.status, rec.Body)
	}
	for k, v := range tc.want {
		if got := res.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	for _, k := range tc.absent {
		if got := res.Header.Values(k); len(got) > 0 {
			t.Errorf("%s = %q, want absent", k, got)
		}
	}
	if !telemetry.ValidRequestID(res.Header.Get("X-Request-Id")) {
		t.Errorf("X-Request-Id %q", res.Header.Get("X-Request-Id"))
	}
	if tc.status == 200 {
		if rec.Body.Len() != 0 {
			t.Errorf("allow with a body: %q", rec.Body)
		}
		return
	}
	var got struct{ Error, Reason, RequestID string }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("deny body %q: %v", rec.Body, err)
	}
	if got.Reason != tc.reason || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("deny reason %q content-type %q, want %q", got.Reason, res.Header.Get("Content-Type"), tc.reason)
	}
	if tc.status == 401 && len(res.Header.Values("Www-Authenticate")) != 2 {
		t.Errorf("WWW-Authenticate = %q, want both challenges", res.Header.Values("Www-Authenticate"))
	}
}

// TestForwardAuthOverLoopback runs the nginx dialect through a real HTTP server, where
// the peer address comes from the TCP connection (127.0.0.1, a trusted proxy).
func TestForwardAuthOverLoopback(t *testing.T) {
	srv := httptest.NewServer(newHandler(t))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Original-URI", "/api/items")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("Authorization", "Bearer alice-token")
	req.Header.Set("X-Portcullis-Subject", "mallory")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != 200 || res.Header.Get("X-Portcullis-Subject") != "alice" {
		t.Fatalf("status %d subject %q, want 200 alice", res.StatusCode, res.Header.Get("X-Portcullis-Subject"))
	}
}

func TestNotReadyDenies503(t *testing.T) {
	h := New(Options{Engine: engine.New(nil), TrustedProxies: trusted})
	runCase(t, h, authCase{remote: "10.0.0.5:1", target: "/auth", hdr: traefik("GET", "/api/x", "h"), status: 503, reason: "engine.not_ready"})
}

// nginx's auth_request passes the client's headers through, and nginx sets only
// X-Original-URI/Method: a client adding X-Forwarded-Uri or X-Forwarded-Method must not
// choose what is evaluated (it did, the X-Forwarded family winning; found by a second
// reader's review). Disagreeing families are refused; agreeing ones are fine.
func TestForwardedFamiliesMustAgree(t *testing.T) {
	h := newHandler(t)
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"client X-Forwarded-Uri beside nginx's X-Original-URI",
			map[string]string{"X-Original-URI": "/api/items", "X-Original-Method": "GET", "X-Forwarded-Uri": "/public/x"}, http.StatusBadRequest},
		{"client X-Forwarded-Method beside nginx's X-Original-Method",
			map[string]string{"X-Original-URI": "/things", "X-Original-Method": "GET", "X-Forwarded-Method": "DELETE"}, http.StatusBadRequest},
		{"client X-Original-URI beside Traefik's X-Forwarded-Uri",
			map[string]string{"X-Forwarded-Uri": "/api/items", "X-Forwarded-Method": "GET", "X-Original-URI": "/public/x"}, http.StatusBadRequest},
		{"both families agreeing", map[string]string{"X-Original-URI": "/api/items", "X-Forwarded-Uri": "/api/items"}, http.StatusUnauthorized},
		{"nginx alone", map[string]string{"X-Original-URI": "/api/items", "X-Original-Method": "GET"}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/_portcullis", nil)
			r.RemoteAddr = "10.0.0.5:4000" // the proxy, trusted
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
		})
	}
}
