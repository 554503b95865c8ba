package filters

import (
	"context"
	"net/http"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
)

const benchDoc = `
upstream: {url: http://127.0.0.1:8080}
providers:
  apikeys:
    - {id: k7f3a9c2, subject: billing, scopes: [invoices:read, invoices:write], hash: "%s"}
policies:
  api:
    inspect: [{ip: {deny: [203.0.113.0/24]}}]
    authenticate: [{apikey: {}}]
    authorize: [{scopes: {any: [invoices:read]}}]
  public: {anonymous: true}
routes:
  - {name: health, policy: public, match: {path: {exact: /health}}}
  - {name: admin, policy: api, match: {path: {prefix: /admin/}}}
  - {name: api, policy: api, match: {path: {prefix: /api/}, methods: [GET, POST]}}
`

// apiKeyEngine is the engine of the target: route match, API key, scopes,
// identity headers.
func apiKeyEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	return engine.New(compile(tb, sprintf(benchDoc, hashOf(testKey))).Table)
}

func apiKeyRequest(h http.Header) *engine.Request {
	r := &engine.Request{ID: "r1", Method: "GET", Scheme: "http", Host: "api", Path: "/api/items",
		RawPath: "/api/items", Header: h}
	r.Peer.IP = mustAddr("192.0.2.1")
	return r
}

func BenchmarkDecideAPIKey(b *testing.B) {
	e := apiKeyEngine(b)
	ctx := context.Background()
	h := http.Header{"X-Api-Key": {testKey}, "Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(ctx, apiKeyRequest(h)); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}

// The engine target: a decision with an API key allocates at most 10 times (counts are
// deterministic, unlike timings, so this is a test and not only a benchmark).
func TestDecideAPIKeyAllocations(t *testing.T) {
	e := apiKeyEngine(t)
	ctx := context.Background()
	h := http.Header{"X-Api-Key": {testKey}, "Accept": {"*/*"}}
	n := testing.AllocsPerRun(200, func() {
		if d := e.Decide(ctx, apiKeyRequest(h)); !d.Allow {
			t.Fatal(d.Reason)
		}
	})
	t.Logf("allocations per API-key decision: %v", n)
	if n > 10 {
		t.Fatalf("an API-key decision allocates %v times; the target is at most 10", n)
	}
}
