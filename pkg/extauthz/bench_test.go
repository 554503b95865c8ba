package extauthz

import (
	"context"
	"io"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis/portcullis/pkg/telemetry"
)

// envoyLikeRequest is what a sidecar Envoy sends for a small authenticated GET.
func envoyLikeRequest() *authv3.CheckRequest {
	return checkRequest("10.1.2.3", "/api/items?limit=10", map[string]string{
		":authority": "api.example.com", ":method": "GET", ":path": "/api/items?limit=10", ":scheme": "https",
		"accept": "application/json", "user-agent": "curl/8.5.0", "authorization": "Bearer alice-token",
		"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https",
		"x-request-id": "6f1c1f0e-8a52-4a8e-9a7f-0c3e8b2d1a44", "x-envoy-expected-rq-timeout-ms": "15000",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
}

// BenchmarkCheck measures one allowed decision through Check, without the transport.
func BenchmarkCheck(b *testing.B) {
	s := newTestServer(b, newTestEngine(b))
	req := envoyLikeRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.Check(ctx, req)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			b.Fatalf("%v %v", resp, err)
		}
	}
}

// BenchmarkCheckWithDecisionLog is BenchmarkCheck with the zap decision log enabled
// (writing to a discarded sink), the production configuration.
func BenchmarkCheckWithDecisionLog(b *testing.B) {
	log := zap.New(zapcoreDiscard())
	s := New(Options{Engine: newTestEngine(b), TrustedProxies: trustedNets, Log: telemetry.NewDecisionLog(log)})
	req := envoyLikeRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// alwaysAllow is the floor: an ext_authz server that answers OK without looking.
type alwaysAllow struct {
	authv3.UnimplementedAuthorizationServer
}

func (alwaysAllow) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &statuspb.Status{}}, nil
}

// benchGRPC drives a registered service over loopback with parallel callers
// (GOMAXPROCS x 16 goroutines on one connection, like Envoy's multiplexed streams).
func benchGRPC(b *testing.B, register func(*grpc.Server)) {
	conn := startServerWith(b, register, 0)
	c := authv3.NewAuthorizationClient(conn)
	req := envoyLikeRequest()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Check(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGRPCPortcullis(b *testing.B) {
	s := newTestServer(b, newTestEngine(b))
	benchGRPC(b, s.Register)
}

func BenchmarkGRPCAlwaysAllow(b *testing.B) {
	benchGRPC(b, func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, alwaysAllow{}) })
}

// zapcoreDiscard is a JSON core at info level writing to io.Discard.
func zapcoreDiscard() zapcore.Core {
	return zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
}

// BenchmarkTranslateProto and BenchmarkTranslateWire compare the two ways a Check's
// request reaches engine.Request: protobuf-go's decoding into a CheckRequest then
// requestFromCheck (what a server registered with the generated code pays), against
// the codec's decodeCheckView then requestFromView (what Register's handler pays).
func BenchmarkTranslateProto(b *testing.B) {
	data, err := proto.Marshal(envoyLikeRequest())
	if err != nil {
		b.Fatal(err)
	}
	st := &checkState{}
	b.ReportAllocs()
	for b.Loop() {
		var cr authv3.CheckRequest
		if err := proto.Unmarshal(data, &cr); err != nil {
			b.Fatal(err)
		}
		if err := requestFromCheck(st, &cr, trustedNets, time.Now); err != nil {
			b.Fatal(err)
		}
		st.reset()
	}
}

func BenchmarkTranslateWire(b *testing.B) {
	data, err := proto.Marshal(envoyLikeRequest())
	if err != nil {
		b.Fatal(err)
	}
	c, st := newCodec(), &checkState{}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &checkWire{st: st}); err != nil {
			b.Fatal(err)
		}
		if err := requestFromView(st, trustedNets, time.Now); err != nil {
			b.Fatal(err)
		}
		st.reset()
	}
}
