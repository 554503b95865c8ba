package filters

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

// Every stage kind the config accepts has a compiler.
func TestEveryConfigKindHasABuilder(t *testing.T) {
	for _, k := range config.StageKinds() {
		if _, ok := stageBuilders[k.Name]; !ok {
			t.Errorf("config stage kind %q has no builder in stageBuilders", k.Name)
		}
	}
	for name := range stageBuilders {
		found := false
		for _, k := range config.StageKinds() {
			found = found || k.Name == name
		}
		if !found {
			t.Errorf("builder %q has no config stage kind", name)
		}
	}
}

// The key below is "pk_k7f3a9c2_" + 56 'a': its SHA-512 is in the document.
var testKey = "pk_k7f3a9c2_" + strings.Repeat("a", 56)

func compile(t testing.TB, doc string) *Compiled {
	t.Helper()
	d, err := config.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	c, err := Build(d, Deps{})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() { _ = c.Table.Close() })
	return c
}

func TestBuildCompilesPoliciesAndRoutes(t *testing.T) {
	doc := `
upstream: {url: http://127.0.0.1:8080}
identity: {header_prefix: x-id-}
providers:
  apikeys:
    - {id: k7f3a9c2, subject: billing, scopes: [invoices:read], hash: "` + hashOf(testKey) + `"}
policies:
  api:
    inspect: [{ip: {deny: [203.0.113.0/24]}}]
    authenticate: [{apikey: {sources: [{header: X-Key}, {query: key}]}}]
    authorize: [{scopes: {all: [invoices:read]}}]
  public: {anonymous: true}
routes:
  - {name: health, policy: public, match: {path: {exact: /health}}}
  - {name: api, policy: api, match: {path: {regex: "^/api/v[0-9]+/"}, methods: [GET], headers: [{name: x-tenant, present: true}]}}
default: {status: 403}
`
	e := engine.New(compile(t, doc).Table)
	tests := []struct {
		name, target string
		hdr          http.Header
		ip           string
		status       int
		reason       string
	}{
		{"health is public", "/health", nil, "", 200, ""},
		{"no credential", "/api/v1/x", http.Header{"X-Tenant": {"a"}}, "", 401, "auth.missing"},
		{"key in header", "/api/v1/x", http.Header{"X-Tenant": {"a"}, "X-Key": {testKey}}, "", 200, ""},
		{"key in query", "/api/v1/x?key=" + testKey, http.Header{"X-Tenant": {"a"}}, "", 200, ""},
		{"denied ip", "/api/v1/x", http.Header{"X-Tenant": {"a"}, "X-Key": {testKey}}, "203.0.113.5", 403, "ip.denied"},
		{"header match fails: default", "/api/v1/x", http.Header{"X-Key": {testKey}}, "", 403, "route.none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := enginetest.NewRequest("GET", tc.target)
			for k, v := range tc.hdr {
				r.Header[k] = v
			}
			if tc.ip != "" {
				r.Peer.IP = mustAddr(tc.ip)
			}
			d := e.Decide(context.Background(), r)
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("status %d reason %q; want %d %q", d.Status, d.Reason, tc.status, tc.reason)
			}
			if d.Allow && d.Route == "api" {
				if !hasSet(d, "x-id-subject", "billing") {
					t.Errorf("identity headers with the configured prefix: %v", d.Upstream.Set)
				}
				hidden := strings.Join(d.Upstream.Remove, ",") + "|" + strings.Join(d.Upstream.RemoveQuery, ",")
				if !strings.Contains(hidden, "x-key") && !strings.Contains(hidden, "|key") {
					t.Errorf("credential not hidden upstream: %s", hidden)
				}
			}
		})
	}
}

func TestBuildErrorsArePlaced(t *testing.T) {
	doc := `upstream: {url: http://127.0.0.1:8080}
providers:
  apikeys:
    - {id: k7f3a9c2, subject: "bad\u0001subject", hash: "` + hashOf(testKey) + `"}
policies:
  api:
    authenticate: [{apikey: {}}]
routes: [{name: api, policy: api}]
`
	d, err := config.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(d, Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "t.yaml:7:21: policies.api.authenticate[0].apikey: ") {
		t.Fatalf("error %v", err)
	}
}

func hasSet(d engine.Decision, name, value string) bool {
	for _, h := range d.Upstream.Set {
		if h.Name == name && h.Value == value {
			return true
		}
	}
	return false
}
