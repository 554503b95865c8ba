package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const rlsDoc = `
policies: {public: {anonymous: true}}
routes: [{name: all, policy: public}]
rls:
  headers_on_ok: true
  domains:
    - domain: edge
      descriptors:
        - key: remote_address
          rate_limit: {unit: minute, requests_per_unit: 3}
        - key: path
          value: /login
          rate_limit: {name: login, unit: hour, requests_per_unit: 10}
        - key: tenant
          descriptors:
            - key: user
              shadow_mode: true
              rate_limit: {unit: day, requests_per_unit: 1}
`

func descriptor(kv ...string) *ratelimitv3.RateLimitDescriptor {
	d := &ratelimitv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// Envoy's rate limit service on the binary's gRPC listener, driven by a client built
// from Envoy's protos: statuses in order, limits, remaining, reset, hits_addend,
// OVER_LIMIT, shadow mode, headers, and domains that follow a reload.
func TestRLS(t *testing.T) {
	cfg := writeConfig(t, rlsDoc)
	s := startSidecar(t, cfg, okUpstream(t), "--watch-interval", "100ms")
	cc, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client := rlsv3.NewRateLimitServiceClient(cc)
	ask := func(req *rlsv3.RateLimitRequest) *rlsv3.RateLimitResponse {
		t.Helper()
		resp, err := client.ShouldRateLimit(ctx, req)
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
		if len(resp.Statuses) != len(req.Descriptors) {
			t.Fatalf("%d statuses for %d descriptors", len(resp.Statuses), len(req.Descriptors))
		}
		return resp
	}

	resp := ask(&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{
		descriptor("remote_address", "192.0.2.7"), descriptor("unknown", "x"), descriptor("path", "/login")}})
	ip, unknown, login := resp.Statuses[0], resp.Statuses[1], resp.Statuses[2]
	if resp.OverallCode != rlsv3.RateLimitResponse_OK || ip.Code != rlsv3.RateLimitResponse_OK ||
		ip.CurrentLimit.GetRequestsPerUnit() != 3 || ip.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE ||
		ip.CurrentLimit.GetName() != "edge.remote_address" || ip.LimitRemaining != 2 {
		t.Fatalf("first answer: %v", resp)
	}
	if d := ip.DurationUntilReset.AsDuration(); d <= 19*time.Second || d > 20*time.Second {
		t.Errorf("remote_address duration_until_reset %v, want just under 20s (one request of 3/min)", d)
	}
	if unknown.Code != rlsv3.RateLimitResponse_OK || unknown.CurrentLimit != nil {
		t.Errorf("unmatched descriptor: %v", unknown)
	}
	if login.CurrentLimit.GetName() != "login" || login.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_HOUR ||
		login.LimitRemaining != 9 || login.DurationUntilReset.AsDuration() > 6*time.Minute {
		t.Errorf("login: %v", login)
	}
	if h := headerValues(resp); !strings.HasPrefix(h["ratelimit-policy"], `"edge.remote_address";q=3;w=60, "login";q=10;w=3600`) || h["retry-after"] != "" {
		t.Errorf("headers on OK: %v", h)
	}

	// hits_addend of the request, then of one descriptor (which wins for it).
	resp = ask(&rlsv3.RateLimitRequest{Domain: "edge", HitsAddend: 2, Descriptors: []*ratelimitv3.RateLimitDescriptor{
		descriptor("remote_address", "192.0.2.7"),
		{Entries: descriptor("path", "/login").Entries, HitsAddend: wrapperspb.UInt64(5)}}})
	if resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].LimitRemaining != 0 || resp.Statuses[1].LimitRemaining != 4 {
		t.Fatalf("hits_addend: %v", resp)
	}

	// Over the limit: OVER_LIMIT overall and for that descriptor only, with Retry-After.
	resp = ask(&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{
		descriptor("path", "/login"), descriptor("remote_address", "192.0.2.7"), descriptor("remote_address", "192.0.2.8")}})
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OK ||
		resp.Statuses[1].Code != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[2].Code != rlsv3.RateLimitResponse_OK ||
		resp.Statuses[1].LimitRemaining != 0 || resp.Statuses[1].DurationUntilReset.AsDuration() <= 0 {
		t.Fatalf("over the limit: %v", resp)
	}
	if h := headerValues(resp); h["retry-after"] == "" || !strings.Contains(h["ratelimit"], `"edge.remote_address";r=0`) {
		t.Errorf("headers on OVER_LIMIT: %v", h)
	}

	// A nested shadow limit reports but never refuses.
	for i := range 2 {
		resp = ask(&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{
			descriptor("tenant", "acme", "user", "u1")}})
		st := resp.Statuses[0]
		if resp.OverallCode != rlsv3.RateLimitResponse_OK || st.CurrentLimit.GetName() != "edge.tenant.user" || st.LimitRemaining != 0 {
			t.Fatalf("shadow request %d: %v", i, resp)
		}
	}
	if scrapeMetric(t, s.admin, `portcullis_ratelimit_hits_total{limit="edge.tenant.user",shadow="true"}`) != 1 ||
		scrapeMetric(t, s.admin, `portcullis_ratelimit_hits_total{limit="edge.remote_address",shadow="false"}`) != 1 {
		t.Errorf("RLS hits not counted")
	}

	// Unknown domain: OK without limits; an empty domain is an invalid argument.
	if resp = ask(&rlsv3.RateLimitRequest{Domain: "other", Descriptors: []*ratelimitv3.RateLimitDescriptor{
		descriptor("remote_address", "192.0.2.7")}}); resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].CurrentLimit != nil {
		t.Errorf("unknown domain: %v", resp)
	}
	if _, err := client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Descriptors: []*ratelimitv3.RateLimitDescriptor{
		descriptor("a", "b")}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty domain: %v", err)
	}

	// A rejected reload keeps the running domains; a valid one replaces them.
	bad := strings.Replace(rlsDoc, "    - domain: edge\n", "    - domain: edge\n    - domain: edge\n", 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if !logged(s, "config reload rejected") {
		t.Fatalf("bad reload not rejected:\n%s", s.logs)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(rlsDoc, "requests_per_unit: 3}", "requests_per_unit: 100}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var rpu uint32
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && rpu != 100; time.Sleep(100 * time.Millisecond) {
		resp = ask(&rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{
			descriptor("remote_address", "192.0.2.9")}})
		rpu = resp.Statuses[0].CurrentLimit.GetRequestsPerUnit()
		if rpu != 3 && rpu != 100 {
			t.Fatalf("during reload: %v", resp)
		}
	}
	if rpu != 100 {
		t.Fatalf("reloaded domains not applied:\n%s", s.logs)
	}
}

func headerValues(resp *rlsv3.RateLimitResponse) map[string]string {
	m := map[string]string{}
	for _, h := range resp.ResponseHeadersToAdd {
		m[strings.ToLower(h.GetKey())] = h.GetValue()
	}
	return m
}
