package engine_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

var alice = &engine.Identity{Subject: "alice", Method: engine.AuthAPIKey, KeyID: "k1",
	Scopes: []string{"read", "write"}}

func newTable(t testing.TB, opts engine.TableOptions, routes ...*engine.Route) *engine.RouteTable {
	t.Helper()
	tab, err := engine.NewRouteTable(routes, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func authPipeline(extra func(p *engine.Pipeline)) *engine.Pipeline {
	p := &engine.Pipeline{
		Name: "api",
		Authenticate: []engine.Stage{enginetest.Stage("token", engine.PhaseAuthenticate,
			enginetest.TokenAuth{"good": alice})},
		Challenges: []string{`Bearer realm="test"`},
	}
	if extra != nil {
		extra(p)
	}
	return p
}

func header(d engine.Decision, name string) (string, bool) {
	for _, h := range d.Upstream.Set {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

func TestDecide(t *testing.T) {
	techErr := engine.FilterFunc(func(context.Context, *engine.Request, *engine.Decision) error {
		return errors.New("backend down")
	})
	tests := []struct {
		name     string
		pipeline *engine.Pipeline
		header   http.Header
		allow    bool
		status   int
		reason   string
		by       string
		subject  string
	}{
		{name: "valid credential", pipeline: authPipeline(nil),
			header: http.Header{"Authorization": {"Bearer good"}}, allow: true, status: 200, subject: "alice"},
		{name: "missing credential", pipeline: authPipeline(nil),
			status: 401, reason: "auth.missing", by: "authenticate"},
		{name: "invalid credential", pipeline: authPipeline(nil),
			header: http.Header{"Authorization": {"Bearer bad"}}, status: 401, reason: "token.unknown", by: "token"},
		{name: "invalid credential never falls through to anonymous",
			pipeline: authPipeline(func(p *engine.Pipeline) { p.Anonymous = true }),
			header:   http.Header{"Authorization": {"Bearer bad"}}, status: 401, reason: "token.unknown", by: "token"},
		{name: "anonymous allowed", pipeline: authPipeline(func(p *engine.Pipeline) { p.Anonymous = true }),
			allow: true, status: 200},
		{name: "inspect denies before authentication",
			pipeline: authPipeline(func(p *engine.Pipeline) {
				p.Inspect = []engine.Stage{enginetest.Stage("ip", engine.PhaseInspect, enginetest.DenyAll(403, "ip.denied"))}
			}),
			header: http.Header{"Authorization": {"Bearer good"}}, status: 403, reason: "ip.denied", by: "ip"},
		{name: "authorize denies", pipeline: authPipeline(func(p *engine.Pipeline) {
			p.Authorize = []engine.Stage{enginetest.Stage("scopes", engine.PhaseAuthorize, enginetest.DenyAll(0, "scopes.insufficient"))}
		}), header: http.Header{"Authorization": {"Bearer good"}}, status: 403, reason: "scopes.insufficient", by: "scopes"},
		{name: "shadow stage does not deny", pipeline: authPipeline(func(p *engine.Pipeline) {
			s := enginetest.Stage("limit", engine.PhaseLimit, enginetest.DenyAll(429, "ratelimit.over"))
			s.Shadow = true
			p.Limit = []engine.Stage{s}
		}), header: http.Header{"Authorization": {"Bearer good"}}, allow: true, status: 200, subject: "alice"},
		{name: "technical failure fails closed", pipeline: authPipeline(func(p *engine.Pipeline) {
			p.Inspect = []engine.Stage{enginetest.Stage("waf", engine.PhaseInspect, techErr)}
		}), header: http.Header{"Authorization": {"Bearer good"}}, status: 503, reason: "stage.unavailable", by: "waf"},
		{name: "technical failure with on_error allow", pipeline: authPipeline(func(p *engine.Pipeline) {
			s := enginetest.Stage("waf", engine.PhaseInspect, techErr)
			s.OnError = engine.OnErrorAllow
			p.Inspect = []engine.Stage{s}
		}), header: http.Header{"Authorization": {"Bearer good"}}, allow: true, status: 200, subject: "alice"},
		{name: "decorate cannot deny", pipeline: authPipeline(func(p *engine.Pipeline) {
			p.Decorate = []engine.Stage{enginetest.Stage("cors", engine.PhaseDecorate, enginetest.DenyAll(403, "x"))}
		}), header: http.Header{"Authorization": {"Bearer good"}}, allow: true, status: 200, subject: "alice"},
		{name: "all mode with one credential missing", pipeline: authPipeline(func(p *engine.Pipeline) {
			p.AuthMode = engine.AuthAll
			p.Authenticate = append(p.Authenticate, enginetest.Stage("other", engine.PhaseAuthenticate,
				engine.AuthenticatorFunc(func(context.Context, *engine.Request) (*engine.Identity, error) {
					return nil, engine.ErrNoCredentials
				})))
		}), header: http.Header{"Authorization": {"Bearer good"}}, status: 401, reason: "auth.incomplete", by: "authenticate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := engine.New(newTable(t, engine.TableOptions{},
				&engine.Route{Name: "r", Match: engine.Match{PathPrefix: "/"}, Pipeline: tc.pipeline}))
			r := enginetest.NewRequest("GET", "/x")
			for k, v := range tc.header {
				r.Header[k] = v
			}
			d := e.Decide(context.Background(), r)
			if d.Allow != tc.allow || d.Status != tc.status || d.Reason != tc.reason || d.DecidedBy != tc.by {
				t.Fatalf("got allow=%v status=%d reason=%q by=%q; want %v %d %q %q",
					d.Allow, d.Status, d.Reason, d.DecidedBy, tc.allow, tc.status, tc.reason, tc.by)
			}
			if !d.Allow && len(d.Upstream.Set) > 0 {
				t.Fatalf("deny carries upstream headers: %v", d.Upstream.Set)
			}
			if got, _ := header(d, "x-portcullis-subject"); got != tc.subject {
				t.Fatalf("subject header %q, want %q", got, tc.subject)
			}
		})
	}
}

func TestDecideChallengeOnMissingCredentials(t *testing.T) {
	e := engine.New(newTable(t, engine.TableOptions{},
		&engine.Route{Name: "r", Pipeline: authPipeline(nil)}))
	d := e.Decide(context.Background(), enginetest.NewRequest("GET", "/"))
	if got := d.Response.Get("Www-Authenticate"); got != `Bearer realm="test"` {
		t.Fatalf("challenge %q", got)
	}
}

func TestZeroDecisionDenies(t *testing.T) {
	var d engine.Decision
	if d.Allow {
		t.Fatal("zero Decision allows")
	}
}

func TestNotReadyAndNoRoute(t *testing.T) {
	ctx := context.Background()
	if d := engine.New(nil).Decide(ctx, enginetest.NewRequest("GET", "/")); d.Allow || d.Status != 503 {
		t.Fatalf("no table: %+v", d)
	}
	e := engine.New(newTable(t, engine.TableOptions{},
		&engine.Route{Name: "r", Match: engine.Match{PathPrefix: "/api/"}, Pipeline: authPipeline(nil)}))
	if d := e.Decide(ctx, enginetest.NewRequest("GET", "/other")); d.Allow || d.Status != 404 || d.Reason != "route.none" {
		t.Fatalf("no route: %+v", d)
	}
	e = engine.New(newTable(t, engine.TableOptions{DefaultStatus: 403},
		&engine.Route{Name: "r", Match: engine.Match{PathPrefix: "/api/"}, Pipeline: authPipeline(nil)}))
	if d := e.Decide(ctx, enginetest.NewRequest("GET", "/other")); d.Status != 403 {
		t.Fatalf("default status: %+v", d)
	}
	anon := &engine.Pipeline{Name: "public", Anonymous: true}
	e = engine.New(newTable(t, engine.TableOptions{Default: anon}))
	if d := e.Decide(ctx, enginetest.NewRequest("GET", "/x")); !d.Allow {
		t.Fatalf("default pipeline: %+v", d)
	}
}

func TestCanceledContextDenies(t *testing.T) {
	e := engine.New(newTable(t, engine.TableOptions{},
		&engine.Route{Name: "r", Pipeline: &engine.Pipeline{Name: "p", Anonymous: true}}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := e.Decide(ctx, enginetest.NewRequest("GET", "/")); d.Allow || d.Status != 503 {
		t.Fatalf("canceled: %+v", d)
	}
}

// Spoofed identity headers: stripped from the view stages see; overwritten when the
// decision sets them, listed for removal otherwise, never both (Envoy removes after set).
func TestSpoofedIdentityHeaders(t *testing.T) {
	var seen http.Header
	probe := engine.FilterFunc(func(_ context.Context, r *engine.Request, _ *engine.Decision) error {
		seen = r.Header.Clone()
		return nil
	})
	p := authPipeline(func(p *engine.Pipeline) {
		p.Inspect = []engine.Stage{enginetest.Stage("probe", engine.PhaseInspect, probe)}
	})
	e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: p}))
	r := enginetest.NewRequest("GET", "/")
	r.Header["Authorization"] = []string{"Bearer good"}
	r.Header["X-Portcullis-Subject"] = []string{"root", "admin"}
	r.Header["X-PORTCULLIS-ISSUER"] = []string{"evil"}
	r.Header["X_portcullis_scopes"] = []string{"admin"}
	r.Header["X-Portcullis-Claim-Tenant"] = []string{"other"}
	d := e.Decide(context.Background(), r)
	if !d.Allow {
		t.Fatalf("deny: %+v", d)
	}
	for k := range seen {
		if len(k) >= 13 && http.CanonicalHeaderKey(k[:13]) == "X-Portcullis-" {
			t.Fatalf("stage saw spoofed header %s", k)
		}
	}
	if v, _ := header(d, "x-portcullis-subject"); v != "alice" {
		t.Fatalf("subject %q", v)
	}
	slices.Sort(d.Upstream.Remove)
	if want := []string{"x-portcullis-claim-tenant", "x-portcullis-issuer", "x_portcullis_scopes"}; !slices.Equal(d.Upstream.Remove, want) {
		t.Fatalf("remove %v, want %v", d.Upstream.Remove, want)
	}
	for _, s := range d.Upstream.Set {
		if slices.Contains(d.Upstream.Remove, s.Name) {
			t.Fatalf("%s both set and removed", s.Name)
		}
	}
}

func TestIdentityHeadersCustomPrefixAndScopes(t *testing.T) {
	e := engine.New(newTable(t, engine.TableOptions{IdentityPrefix: "X-Auth-"},
		&engine.Route{Name: "r", Pipeline: authPipeline(nil)}))
	r := enginetest.NewRequest("GET", "/")
	r.Header.Set("Authorization", "Bearer good")
	r.Header.Set("X-Auth-Subject", "root")
	d := e.Decide(context.Background(), r)
	want := map[string]string{"x-auth-subject": "alice", "x-auth-auth": "apikey", "x-auth-key-id": "k1", "x-auth-scopes": "read write"}
	for k, v := range want {
		if got, ok := header(d, k); !ok || got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(d.Upstream.Remove) != 0 {
		t.Errorf("set header also removed: %v", d.Upstream.Remove)
	}
}

func TestHideCredentials(t *testing.T) {
	p := authPipeline(func(p *engine.Pipeline) {
		p.HideHeaders = []string{"authorization", "x-api-key"}
		p.StripQuery = []string{"api_key"}
	})
	e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: p}))
	r := enginetest.NewRequest("GET", "/x?api_key=zzz&keep=1")
	r.Header.Set("Authorization", "Bearer good")
	d := e.Decide(context.Background(), r)
	if !slices.Equal(d.Upstream.Remove, []string{"authorization"}) || !slices.Equal(d.Upstream.RemoveQuery, []string{"api_key"}) {
		t.Fatalf("remove=%v query=%v", d.Upstream.Remove, d.Upstream.RemoveQuery)
	}
}

type countingObserver struct{ n, denies int }

func (c *countingObserver) Observe(_ context.Context, _ *engine.Request, d *engine.Decision) {
	c.n++
	if !d.Allow {
		c.denies++
	}
}

func TestObserversSeeFinalDecision(t *testing.T) {
	obs := &countingObserver{}
	p := authPipeline(func(p *engine.Pipeline) { p.Observers = []engine.Observer{obs} })
	e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: p}))
	for _, tok := range []string{"good", "bad", "bad"} {
		r := enginetest.NewRequest("GET", "/")
		r.Header.Set("Authorization", "Bearer "+tok)
		e.Decide(context.Background(), r)
	}
	if obs.n != 3 || obs.denies != 2 {
		t.Fatalf("observer saw %d decisions, %d denies", obs.n, obs.denies)
	}
}

func TestRouteMatching(t *testing.T) {
	p := &engine.Pipeline{Name: "p", Anonymous: true}
	routes := []*engine.Route{
		{Name: "exact", Match: engine.Match{PathExact: "/health", Methods: []string{"GET"}}, Pipeline: p},
		{Name: "host", Match: engine.Match{Hosts: []string{"*.Example.com"}, PathPrefix: "/api/"}, Pipeline: p},
		{Name: "ci", Match: engine.Match{PathPrefix: "/Admin/", CaseInsensitive: true}, Pipeline: p},
		{Name: "regex", Match: engine.Match{PathRegex: regexp.MustCompile(`^/v[0-9]+/items$`)}, Pipeline: p},
		{Name: "header", Match: engine.Match{PathPrefix: "/t/", Headers: []engine.HeaderMatch{{Name: "x-tenant", Exact: "acme"}}}, Pipeline: p},
		{Name: "noheader", Match: engine.Match{PathPrefix: "/t/", Headers: []engine.HeaderMatch{{Name: "x-tenant", Present: true, Invert: true}}}, Pipeline: p},
	}
	tab := newTable(t, engine.TableOptions{}, routes...)
	tests := []struct {
		method, host, path string
		header             http.Header
		want               string
	}{
		{"GET", "a", "/health", nil, "exact"},
		{"get", "a", "/health", nil, ""},
		{"POST", "a", "/health", nil, ""},
		{"GET", "api.example.com:8443", "/api/x", nil, "host"},
		{"GET", "example.com", "/api/x", nil, ""},
		{"GET", "evil.com", "/api/x", nil, ""},
		{"GET", "x", "/admin/users", nil, "ci"},
		{"GET", "x", "/v2/items", nil, "regex"},
		{"GET", "x", "/v2/items/1", nil, ""},
		{"GET", "x", "/t/1", http.Header{"X-Tenant": {"acme"}}, "header"},
		{"GET", "x", "/t/1", http.Header{"X-Tenant": {"other"}}, ""},
		{"GET", "x", "/t/1", nil, "noheader"},
	}
	for _, tc := range tests {
		r := enginetest.NewRequest(tc.method, tc.path)
		r.Host = tc.host
		if tc.header != nil {
			r.Header = tc.header
		}
		got := ""
		if rt := tab.Lookup(r); rt != nil {
			got = rt.Name
		}
		if got != tc.want {
			t.Errorf("%s %s%s: route %q, want %q", tc.method, tc.host, tc.path, got, tc.want)
		}
	}
	r := enginetest.NewRequest("GET", "/nothing")
	r.Route = "regex"
	if rt := tab.Lookup(r); rt == nil || rt.Name != "regex" {
		t.Errorf("route by name: %v", rt)
	}
	r.Route = "missing"
	if rt := tab.Lookup(r); rt != nil {
		t.Errorf("unknown route name matched %s", rt.Name)
	}
}

func TestNewRouteTableErrors(t *testing.T) {
	p := &engine.Pipeline{Name: "p", Anonymous: true}
	bad := &engine.Pipeline{Name: "bad", Inspect: []engine.Stage{{Name: "x", Phase: engine.PhaseAuthenticate,
		Auth: enginetest.TokenAuth{}}}}
	_, err := engine.NewRouteTable([]*engine.Route{
		{Name: "a", Pipeline: p}, {Name: "a", Pipeline: p}, {Name: "", Pipeline: p}, {Name: "b", Pipeline: bad},
	}, engine.TableOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`route "a": duplicate name`, "route 2: name and pipeline are required", `route "b"`} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(err.Error()) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestSwapIsAtomic(t *testing.T) {
	allow := &engine.Pipeline{Name: "allow", Anonymous: true}
	e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: allow}))
	old := e.Swap(newTable(t, engine.TableOptions{DefaultStatus: 410}))
	if old == nil || len(old.Routes()) != 1 {
		t.Fatal("swap did not return the old table")
	}
	if d := e.Decide(context.Background(), enginetest.NewRequest("GET", "/")); d.Status != 410 {
		t.Fatalf("after swap: %+v", d)
	}
}

// Review findings: each of these was a way to weaken the identity contract.
func TestIdentityContractHardening(t *testing.T) {
	ctx := context.Background()
	if _, err := engine.NewRouteTable(nil, engine.TableOptions{IdentityPrefix: "x_pc-"}); err == nil {
		t.Error("a prefix with '_' was accepted; stripping could never match it")
	}

	// A hidden header spelled with '_' (read as '-' by CGI-style upstreams) is removed.
	p := authPipeline(func(p *engine.Pipeline) { p.HideHeaders = []string{"x-tenant"} })
	e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: p}))
	r := enginetest.NewRequest("GET", "/")
	r.Header.Set("Authorization", "Bearer good")
	r.Header["X_tenant"] = []string{"acme"}
	if d := e.Decide(ctx, r); !d.Allow || !slices.Contains(d.Upstream.Remove, "x_tenant") {
		t.Errorf("underscore spelling not removed: %v", d.Upstream.Remove)
	}

	// Identity values that cannot travel in a header deny instead of being sent.
	for _, id := range []*engine.Identity{
		{Subject: "alice\r\nx-portcullis-subject: root", Method: engine.AuthJWT},
		{Subject: "alice", Method: engine.AuthJWT, Scopes: []string{"read admin"}},
		{Subject: "alice", Method: engine.AuthJWT, Headers: []engine.HeaderValue{{Name: "x-c", Value: "a\x00b"}}},
	} {
		p := authPipeline(nil)
		p.Authenticate = []engine.Stage{enginetest.Stage("token", engine.PhaseAuthenticate, enginetest.TokenAuth{"t": id})}
		e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: p}))
		r := enginetest.NewRequest("GET", "/")
		r.Header.Set("Authorization", "Bearer t")
		if d := e.Decide(ctx, r); d.Allow || d.Status != 401 || d.Reason != "identity.invalid" {
			t.Errorf("identity %+v: %+v", id, d)
		}
	}

	// An authenticator returning (nil, nil) is a technical failure, never anonymous.
	p = &engine.Pipeline{Name: "p", Anonymous: true, Authenticate: []engine.Stage{enginetest.Stage("buggy",
		engine.PhaseAuthenticate, engine.AuthenticatorFunc(func(context.Context, *engine.Request) (*engine.Identity, error) {
			return nil, nil
		}))}}
	e = engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: p}))
	if d := e.Decide(ctx, enginetest.NewRequest("GET", "/")); d.Allow || d.Status != 503 {
		t.Errorf("(nil, nil) authenticator: %+v", d)
	}
}
