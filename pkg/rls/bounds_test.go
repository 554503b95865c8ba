package rls

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/portcullis/portcullis/pkg/extauthz"
)

// A limit override faster than the limiter can represent (over 1e9 per second, a legal
// uint32 in Envoy's proto) limits nothing, like any unusable override; it must not turn
// the call into a gRPC error, which Envoy's default failure mode answers by admitting
// the request, so the descriptor that is over its limit would go unenforced (found by
// a second reader's review).
func TestHugeOverrideDoesNotFailTheCall(t *testing.T) {
	c := serve(t, memoryOptions())
	huge := desc("generic_key", "bulk")
	huge.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 2_000_000_000, Unit: typev3.RateLimitUnit_SECOND}
	var last *rlsv3.RateLimitResponse
	for i := range 3 { // per-ip admits 2 per minute: the third is over
		resp, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "edge",
			Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("remote_address", "198.51.100.1"), huge}})
		if err != nil {
			t.Fatalf("call %d: %v (Envoy would admit the request)", i+1, err)
		}
		last = resp
	}
	if last.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || last.Statuses[1].Code != rlsv3.RateLimitResponse_OK {
		t.Fatalf("overall %v, statuses %v: want OVER_LIMIT from the per-ip descriptor, OK for the override", last.OverallCode, last.Statuses)
	}
}

// The same limit in configuration is refused when the server is built.
func TestHugeConfiguredLimitRefused(t *testing.T) {
	o := memoryOptions()
	o.Domains = []Domain{{Name: "d", Descriptors: []Descriptor{
		{Key: "k", RateLimit: &RateLimit{Unit: "second", RequestsPerUnit: 2_000_000_000}}}}}
	if _, err := New(o); err == nil {
		t.Fatal("a limit of 2e9 per second was accepted")
	}
}

// rawCodec sends pre-encoded bytes, so the client allocates almost nothing.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A request of empty descriptors (two bytes each) is refused without the server
// allocating more than a small multiple of its size: it allocated 240 times its size
// before the bounds (DESIGN.md §7).
func TestEmptyDescriptorsDoNotAmplify(t *testing.T) {
	const n = 1_000_000 // ~2 MB, under the listener's receive limit
	msg := []byte{0x0a, 4, 'e', 'd', 'g', 'e'}
	for range n {
		msg = append(msg, 0x12, 0x00)
	}
	s, err := New(memoryOptions())
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(extauthz.ServerOptions(1 << 20)...)
	s.Register(g)
	go g.Serve(lis) // stopped by the cleanup below
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var out []byte
	err = conn.Invoke(ctx, rlsv3.RateLimitService_ShouldRateLimit_FullMethodName, &msg, &out)
	runtime.ReadMemStats(&after)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("%d empty descriptors: %v, want InvalidArgument", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*uint64(len(msg)) {
		t.Fatalf("one call allocated %d MB for a %d KB request (x%d)", alloc>>20, len(msg)>>10, alloc/uint64(len(msg)))
	}
}

// A value ending in '*' (a prefix wildcard in envoyproxy/ratelimit) is refused, not
// matched literally: a ported configuration would silently never limit.
func TestWildcardValueRefused(t *testing.T) {
	o := memoryOptions()
	o.Domains = []Domain{{Name: "d", Descriptors: []Descriptor{
		{Key: "path", Value: "/api/*", RateLimit: &RateLimit{Unit: "minute", RequestsPerUnit: 10}}}}}
	if _, err := New(o); err == nil {
		t.Fatal("a wildcard value was accepted")
	}
}
