package rls

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis/portcullis/pkg/extauthz"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/valkeystore"
	"github.com/portcullis/portcullis/test/redisharness"
)

var testDomains = []Domain{{
	Name: "edge",
	Descriptors: []Descriptor{
		{Key: "remote_address", RateLimit: &RateLimit{Name: "per-ip", Unit: "minute", RequestsPerUnit: 2}},
		{Key: "path", Value: "/login", RateLimit: &RateLimit{Unit: "hour", RequestsPerUnit: 1},
			Descriptors: []Descriptor{{Key: "user", RateLimit: &RateLimit{Name: "login-user", Unit: "MINUTE", RequestsPerUnit: 5}}}},
		{Key: "path", RateLimit: &RateLimit{Name: "any-path", Unit: "second", RequestsPerUnit: 100}},
		{Key: "trial", RateLimit: &RateLimit{Name: "trial", Unit: "day", RequestsPerUnit: 1}, ShadowMode: true},
		{Key: "internal", RateLimit: &RateLimit{Unlimited: true}},
	},
}}

// serve starts the service on a loopback TCP listener, with the gRPC options of
// Portcullis's listener (its codec decodes requests from the wire and pools answers),
// and returns a real client.
func serve(t testing.TB, o Options) rlsv3.RateLimitServiceClient {
	t.Helper()
	return serveOn(t, o, grpc.NewServer(extauthz.ServerOptions(1<<20)...))
}

// The codec in pkg/extauthz finds the wire path through these interfaces; a rename
// would silently drop it (TestCodecPath checks the path is taken).
var (
	_ extauthz.WireUnmarshaler = (*wireRequest)(nil)
	_ extauthz.MarshalReleaser = (*pooledAnswer)(nil)
)

// servers are the two ways the handler decodes and answers: Portcullis's codec, and
// the standard one (a server built without Portcullis's options).
var servers = []struct {
	name string
	new  func() *grpc.Server
}{
	{"portcullis-codec", func() *grpc.Server { return grpc.NewServer(extauthz.ServerOptions(1 << 20)...) }},
	{"standard-codec", func() *grpc.Server { return grpc.NewServer() }},
}

func serveOn(t testing.TB, o Options, g *grpc.Server) rlsv3.RateLimitServiceClient {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Register(g)
	go g.Serve(lis) // stopped by the cleanup below
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn)
}

func memoryOptions() Options {
	m := store.NewMemory(store.MemoryOptions{})
	return Options{Domains: testDomains, Limiter: func(store.Policy) store.Limiter { return m }}
}

func desc(kv ...string) *ratelimitv3.RateLimitDescriptor {
	d := &ratelimitv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func call(t *testing.T, c rlsv3.RateLimitServiceClient, req *rlsv3.RateLimitRequest) *rlsv3.RateLimitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ShouldRateLimit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Statuses) != len(req.Descriptors) {
		t.Fatalf("%d statuses for %d descriptors", len(resp.Statuses), len(req.Descriptors))
	}
	return resp
}

func header(resp *rlsv3.RateLimitResponse, name string) string {
	for _, h := range resp.ResponseHeadersToAdd {
		if h.Key == name {
			return h.Value
		}
	}
	return ""
}

func TestShouldRateLimit(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { testShouldRateLimit(t, srv.new()) })
	}
}

func testShouldRateLimit(t *testing.T, g *grpc.Server) {
	c := serveOn(t, memoryOptions(), g)
	req := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{
		desc("remote_address", "10.0.0.1"),
		desc("unknown", "x"),
		desc("path", "/login", "user", "alice"),
		desc("internal", "yes"),
	}}
	for i := range 2 {
		resp := call(t, c, req)
		if resp.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Fatalf("call %d: %v", i, resp.OverallCode)
		}
		st := resp.Statuses[0]
		if st.CurrentLimit.GetName() != "per-ip" || st.CurrentLimit.GetRequestsPerUnit() != 2 ||
			st.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE || st.LimitRemaining != uint32(1-i) ||
			st.DurationUntilReset.AsDuration() <= 0 {
			t.Fatalf("call %d status: %v", i, st)
		}
		for _, j := range []int{1, 3} { // no limit applies: OK without current_limit
			if s := resp.Statuses[j]; s.Code != rlsv3.RateLimitResponse_OK || s.CurrentLimit != nil {
				t.Fatalf("status %d: %v", j, s)
			}
		}
		if resp.Statuses[2].CurrentLimit.GetName() != "login-user" {
			t.Fatalf("nested match: %v", resp.Statuses[2])
		}
		if len(resp.ResponseHeadersToAdd) != 0 {
			t.Fatal("headers on OK without HeadersOnOK")
		}
	}
	resp := call(t, c, req)
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[0].Code != rlsv3.RateLimitResponse_OVER_LIMIT ||
		resp.Statuses[2].Code != rlsv3.RateLimitResponse_OK {
		t.Fatalf("third call: %v", resp)
	}
	// Seconds are rounded up from a real clock: a slow machine may let a few pass
	// between the calls.
	if got, err := strconv.Atoi(header(resp, "retry-after")); err != nil || got > 30 || got < 27 {
		t.Errorf("retry-after = %q", header(resp, "retry-after"))
	}
	if got := header(resp, "ratelimit-policy"); got != `"per-ip";q=2;w=60, "login-user";q=5;w=60` {
		t.Errorf("ratelimit-policy = %q", got)
	}
	var t1, t2 int
	got := header(resp, "ratelimit")
	if n, _ := fmt.Sscanf(got, `"per-ip";r=0;t=%d, "login-user";r=2;t=%d`, &t1, &t2); n != 2 ||
		got != fmt.Sprintf(`"per-ip";r=0;t=%d, "login-user";r=2;t=%d`, t1, t2) ||
		t1 > 60 || t1 < 57 || t2 > 36 || t2 < 33 {
		t.Errorf("ratelimit = %q", got)
	}
}

func TestMatching(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { testMatching(t, srv.new()) })
	}
}

func testMatching(t *testing.T, g *grpc.Server) {
	c := serveOn(t, memoryOptions(), g)
	tests := []struct {
		d    *ratelimitv3.RateLimitDescriptor
		name string // "" : no limit
	}{
		{desc("path", "/login"), "edge.path_/login"},
		{desc("path", "/other"), "any-path"},
		{desc("path", "/login", "user", "bob"), "login-user"},
		{desc("path", "/other", "user", "bob"), ""}, // "path" has no children
		{desc("remote_address", "10.0.0.1", "extra", "x"), ""},
		{desc(), ""},
	}
	for _, tc := range tests {
		resp := call(t, c, &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{tc.d}})
		if got := resp.Statuses[0].CurrentLimit.GetName(); got != tc.name {
			t.Errorf("%v: limit %q, want %q", tc.d.Entries, got, tc.name)
		}
	}
	resp := call(t, c, &rlsv3.RateLimitRequest{Domain: "nowhere", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("path", "/")}})
	if resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].CurrentLimit != nil {
		t.Errorf("unknown domain: %v", resp)
	}
}

func TestHitsAddendShadowOverride(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { testHitsAddendShadowOverride(t, srv.new()) })
	}
}

func testHitsAddendShadowOverride(t *testing.T, g *grpc.Server) {
	var shadowHits atomic.Int64
	o := memoryOptions()
	o.HeadersOnOK = true
	o.OnLimit = func(domain, limit string, shadow bool) {
		if shadow {
			shadowHits.Add(1)
		}
	}
	c := serveOn(t, o, g)
	// Request-level hits_addend 2 spends the per-ip limit of 2 at once.
	resp := call(t, c, &rlsv3.RateLimitRequest{Domain: "edge", HitsAddend: 2,
		Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("remote_address", "10.0.0.2")}})
	if resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].LimitRemaining != 0 || header(resp, "ratelimit") == "" {
		t.Fatalf("hits_addend 2: %v", resp)
	}
	// A per-descriptor hits_addend of 0 overrides the request's and only reports.
	d := desc("remote_address", "10.0.0.2")
	d.HitsAddend = wrapperspb.UInt64(0)
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "edge", HitsAddend: 5, Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
	if resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("per-descriptor hits_addend 0: %v", resp)
	}
	// Shadow: over the limit, yet OK, and reported.
	for range 2 {
		resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("trial", "t")}})
		if resp.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Fatal("a shadow descriptor limited")
		}
	}
	if shadowHits.Load() != 1 {
		t.Fatalf("shadow over-limit reported %d times", shadowHits.Load())
	}
	// An override replaces the configured limit.
	d = desc("remote_address", "10.0.0.3")
	d.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_HOUR}
	call(t, c, &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
	if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[0].CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_HOUR {
		t.Fatalf("override: %v", resp)
	}
}

func TestInvalidRequests(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { testInvalidRequests(t, srv.new()) })
	}
}

func testInvalidRequests(t *testing.T, g *grpc.Server) {
	c := serveOn(t, memoryOptions(), g)
	for _, req := range []*rlsv3.RateLimitRequest{
		{Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("a", "b")}},
		{Domain: "edge"},
	} {
		_, err := c.ShouldRateLimit(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v", req, err)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	lim := func(store.Policy) store.Limiter { return store.NewMemory(store.MemoryOptions{}) }
	bad := [][]Domain{
		{{Name: ""}},
		{{Name: "a"}, {Name: "a"}},
		{{Name: "a", Descriptors: []Descriptor{{Key: ""}}}},
		{{Name: "a", Descriptors: []Descriptor{{Key: "k"}, {Key: "k"}}}},
		{{Name: "a", Descriptors: []Descriptor{{Key: "k", RateLimit: &RateLimit{Unit: "fortnight", RequestsPerUnit: 1}}}}},
		{{Name: "a", Descriptors: []Descriptor{{Key: "k", RateLimit: &RateLimit{Unit: "second"}}}}},
	}
	for i, ds := range bad {
		if _, err := New(Options{Domains: ds, Limiter: lim}); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	if _, err := New(Options{Domains: testDomains}); err == nil {
		t.Error("no limiter accepted")
	}
}

// TestValkeyStoreAndDenyPolicy runs the service on a real server, then stops the
// server: a deny-policy limit answers OVER_LIMIT, a local-policy limit keeps deciding.
func TestValkeyStoreAndDenyPolicy(t *testing.T) {
	srv := redisharness.Start(t)
	vs, err := valkeystore.New(valkeystore.Options{Addrs: []string{srv.Addr()}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vs.Close)
	g := store.NewGuard(vs, store.NewMemory(store.MemoryOptions{}), store.GuardOptions{})
	c := serve(t, Options{Limiter: g.Limiter, Domains: []Domain{{Name: "d", Descriptors: []Descriptor{
		{Key: "strict", RateLimit: &RateLimit{Unit: "minute", RequestsPerUnit: 10, OnStoreError: store.PolicyDeny}},
		{Key: "lenient", RateLimit: &RateLimit{Unit: "minute", RequestsPerUnit: 10}},
	}}}})
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("strict", "a"), desc("lenient", "a")}}
	if resp := call(t, c, req); resp.OverallCode != rlsv3.RateLimitResponse_OK || resp.Statuses[0].LimitRemaining != 9 {
		t.Fatalf("with the store: %v", resp)
	}
	srv.Stop()
	resp := call(t, c, req)
	if resp.Statuses[0].Code != rlsv3.RateLimitResponse_OVER_LIMIT || resp.Statuses[1].Code != rlsv3.RateLimitResponse_OK {
		t.Fatalf("store down: %v", resp)
	}
}

func BenchmarkShouldRateLimitMemory(b *testing.B) {
	o := memoryOptions()
	o.Domains = []Domain{{Name: "b", Descriptors: []Descriptor{{Key: "k", RateLimit: &RateLimit{Unit: "second", RequestsPerUnit: 1_000_000_000}}}}}
	c := serve(b, o)
	req := &rlsv3.RateLimitRequest{Domain: "b", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("k", "v")}}
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.ShouldRateLimit(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
