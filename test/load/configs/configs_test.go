// Package configs holds the policy documents `make bench` (test/load/bench.sh) serves.
// Its test keeps them from rotting: each must load with the real parser, compile with
// the real registry, and allow the request the load generator sends.
package configs

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters"
	"github.com/portcullis/portcullis/filters/jwt"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/extauthz"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

func TestEveryConfigLoadsAndCompiles(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d bench configs, want at least 4 (jwt, hmac, ratelimit memory and valkey)", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) { compile(t, f) })
	}
}

// compile loads path with config.Load and compiles it offline into a route table.
func compile(t *testing.T, path string) *engine.Engine {
	t.Helper()
	doc, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	c, err := filters.Build(doc, filters.Deps{Offline: true})
	if err != nil {
		t.Fatalf("filters.Build: %v", err)
	}
	t.Cleanup(func() { _ = c.Table.Close() })
	return engine.New(c.Table)
}

// benchRequest is the request the load generator's CheckRequest maps to.
func benchRequest(method string, h http.Header, body []byte) *engine.Request {
	return &engine.Request{Method: method, Scheme: "http", Host: "api.example.com",
		Path: "/api/items", RawPath: "/api/items", Header: h, Body: body, HasBody: body != nil,
		Peer:     engine.Peer{IP: netip.MustParseAddr("127.0.0.1"), Direct: netip.MustParseAddr("127.0.0.1")},
		Received: time.Now()}
}

func decide(t *testing.T, e *engine.Engine, r *engine.Request) engine.Decision {
	t.Helper()
	return e.Decide(context.Background(), r)
}

// The token bench.sh mints (jwt-key.jwk, jwt-claims.json) is accepted by jwt.yaml,
// and a token signed by another key is not.
func TestJWTBenchTokenAllowed(t *testing.T) {
	e := compile(t, "jwt.yaml")
	key := read(t, "jwt-key.jwk")
	var claims map[string]any
	if err := json.Unmarshal(read(t, "jwt-claims.json"), &claims); err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.SignDevToken(key, claims, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d := decide(t, e, benchRequest(http.MethodGet, http.Header{"Authorization": {"Bearer " + tok}}, nil)); !d.Allow {
		t.Fatalf("bench token denied: %d %s %s", d.Status, d.Reason, d.Message)
	}
	other := strings.Replace(string(key), `"kid":"bench-es256"`, `"kid":"other"`, 1)
	forged, err := jwt.SignDevToken([]byte(other), claims, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d := decide(t, e, benchRequest(http.MethodGet, http.Header{"Authorization": {"Bearer " + forged}}, nil)); d.Allow {
		t.Fatal("token with an unknown kid allowed")
	}
}

// A request signed as the load generator signs it (a 1 KiB body, content-digest
// covered) is accepted once by hmac.yaml; its replay and a tampered body are not.
func TestHMACBenchRequestAllowedOnce(t *testing.T) {
	e := compile(t, "hmac.yaml")
	key, err := httpsig.NewHMACKey("bench-2025", read(t, "hmac-secret.txt"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := httpsig.NewSigner(key, httpsig.SignerOptions{
		Components: []string{httpsig.ComponentMethod, httpsig.ComponentTargetURI, "content-digest"}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 1024))
	m := &httpsig.Message{Method: http.MethodPost, Scheme: "http", Authority: "api.example.com",
		RawPath: "/api/items", Header: http.Header{}, Body: body}
	if err := signer.Sign(m); err != nil {
		t.Fatal(err)
	}
	send := func(b []byte) engine.Decision {
		return decide(t, e, benchRequest(http.MethodPost, m.Header.Clone(), b))
	}
	if d := send(body); !d.Allow {
		t.Fatalf("signed request denied: %d %s %s", d.Status, d.Reason, d.Message)
	}
	if d := send(body); d.Allow || d.Reason != "hmac.replay" {
		t.Fatalf("replayed signature: allow=%v reason %q, want hmac.replay", d.Allow, d.Reason)
	}
	tampered := append([]byte(nil), body...)
	tampered[0] = 'y'
	if d := send(tampered); d.Allow {
		t.Fatal("tampered body allowed")
	}
}

// The quickstart's demo key, as bench.sh sends it, is allowed by apikey-nolog.yaml.
func TestAPIKeyBenchKeyAllowed(t *testing.T) {
	e := compile(t, "apikey-nolog.yaml")
	key := strings.TrimSpace(string(read(t, "../../../examples/quickstart/demo-key.txt")))
	if d := decide(t, e, benchRequest(http.MethodGet, http.Header{"X-Api-Key": {key}}, nil)); !d.Allow {
		t.Fatalf("demo key denied: %d %s", d.Status, d.Reason)
	}
	if d := decide(t, e, benchRequest(http.MethodGet, http.Header{"X-Api-Key": {key + "x"}}, nil)); d.Allow {
		t.Fatal("altered key allowed")
	}
}

// The rate limits never trigger at bench rates: a burst of requests from one client
// all pass on the stage and on RLS.
func TestRateLimitBenchNeverLimits(t *testing.T) {
	e := compile(t, "ratelimit-memory.yaml")
	for i := range 1000 {
		if d := decide(t, e, benchRequest(http.MethodGet, http.Header{}, nil)); !d.Allow {
			t.Fatalf("request %d denied: %d %s", i, d.Status, d.Reason)
		}
	}
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkCheckAPIKey is the ext_authz API-key pair's target call without the transport:
// the quickstart policy, the CheckRequest the load generator sends, Check's translation,
// decision and response (no decision log; BenchmarkDecisionLine measures it). It shows
// what Portcullis adds per call over the always-allow floor, minus gRPC.
func BenchmarkCheckAPIKey(b *testing.B) {
	doc, err := config.Load("../../../examples/quickstart/portcullis.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c, err := filters.Build(doc, filters.Deps{Offline: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Table.Close()
	s := extauthz.New(extauthz.Options{Engine: engine.New(c.Table)})
	key := strings.TrimSpace(string(read(b, "../../../examples/quickstart/demo-key.txt")))
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1234", Method: "GET", Path: "/api/items", Host: "api.example.com", Scheme: "http", Protocol: "HTTP/1.1",
				Headers: map[string]string{"x-api-key": key, "x-request-id": "b1b2c3d4-0000-4000-8000-000000000001"},
			},
		},
	}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatalf("%v %v", resp, err)
		}
	}
}
