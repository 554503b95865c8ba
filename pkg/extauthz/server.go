// Package extauthz is Portcullis's Envoy ext_authz v3 gRPC front-end: it translates a
// CheckRequest into an engine.Request (requestFromCheck), asks the engine, and
// translates the Decision back into a CheckResponse (checkResponse). Envoy types stop
// here; the engine and the filters never see them.
//
// Policy decisions are always ordinary CheckResponses (OK, or PERMISSION_DENIED with a
// DeniedHttpResponse), so Envoy's failure_mode_allow never turns a deny into an allow.
// Only when the engine has no configuration yet does Check return a gRPC Unavailable
// error, which is what failure_mode_allow is for (ENVOY.md §2).
package extauthz

import (
	"context"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// frontend names this front-end in logs and metrics.
const frontend = "extauthz"

// Options configure a Server.
type Options struct {
	// Engine decides every request. Required.
	Engine *engine.Engine
	// TrustedProxies are the hops whose X-Forwarded-For entries are believed when Envoy
	// reports one of them as the source address.
	TrustedProxies []netip.Prefix
	// Log writes one decision line per Check (optional).
	Log *telemetry.DecisionLog
	// Audit records denies (optional).
	Audit *telemetry.Audit
	// Logger receives debug notes about calls answered with a gRPC error (optional).
	Logger *zap.Logger
	// Now is the clock used when Envoy sends no request time (default time.Now).
	Now func() time.Time
}

// Server implements Envoy's envoy.service.auth.v3.Authorization service.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	engine  *engine.Engine
	trusted []netip.Prefix
	log     *telemetry.DecisionLog
	audit   *telemetry.Audit
	logger  *zap.Logger
	now     func() time.Time
	pool    sync.Pool // *checkState
	answers sync.Pool // *pooledResponse
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a Server for o.
func New(o Options) *Server {
	s := &Server{
		engine:  o.Engine,
		trusted: o.TrustedProxies,
		log:     o.Log,
		audit:   o.Audit,
		logger:  o.Logger,
		now:     o.Now,
	}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.pool.New = func() any { return &checkState{} }
	s.answers.New = func() any { return &pooledResponse{put: func(p *pooledResponse) { s.answers.Put(p) }} }
	return s
}

// Register registers s as the Authorization service of g. Its Check handler decodes
// the request straight from the wire into the pooled per-call state (decodeCheckView)
// instead of into an *authv3.CheckRequest; the answer is the same as Check's. Unary
// interceptors see a *checkWire request.
func (s *Server) Register(g *grpc.Server) { g.RegisterService(&checkService, s) }

// checkService is envoy.service.auth.v3.Authorization with checkHandler. Its method
// and service names are the generated descriptor's, so clients see no difference.
var checkService = grpc.ServiceDesc{
	ServiceName: "envoy.service.auth.v3.Authorization",
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "envoy/service/auth/v3/external_auth.proto",
}

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	st := s.pool.Get().(*checkState)
	defer s.release(st)
	w := &checkWire{st: st}
	if err := dec(w); err != nil {
		return nil, err
	}
	handle := func(ctx context.Context, _ any) (any, error) {
		d, err := s.decide(ctx, st, requestFromView(st, s.trusted, s.now))
		if err != nil {
			return nil, err
		}
		p := s.answers.Get().(*pooledResponse)
		p.block.fill(&st.req, &d, st.generatedID)
		return p, nil
	}
	if interceptor == nil {
		return handle(ctx, nil)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, w, info, handle)
}

// pooledResponse is a Check answer built in a reused responseBlock. The codec marshals
// it like the CheckResponse it holds and then returns it to its pool: nothing of an
// answer is allocated per call once the pool is warm. Nothing may read the reply after
// the codec marshalled it; see ServerOptions for the gRPC features that would.
type pooledResponse struct {
	block responseBlock
	put   func(*pooledResponse) // returns it to its pool
}

func (p *pooledResponse) release() { p.put(p) }

// RegisterHealth registers the standard gRPC health service on g, reporting SERVING for
// the server as a whole ("") and for envoy.service.auth.v3.Authorization. The caller
// owns the returned server: SetServingStatus to change it, Shutdown when draining.
func RegisterHealth(g *grpc.Server) *health.Server {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	return hs
}

// Headroom added to the body limit for the rest of a CheckRequest (headers, attributes).
const recvHeadroom = 256 << 10

// minRecvBytes is gRPC's default receive limit, kept as the floor.
const minRecvBytes = 4 << 20

// ServerOptions returns the grpc.Server options for the ext_authz listener.
// maxBodyBytes is the largest body Envoy may send (its max_request_bytes); the receive
// limit is that plus headroom for headers, and never below gRPC's 4 MiB default.
// Keepalive enforcement accepts Envoy's HTTP/2 pings down to every 5s, also without
// active streams, so a sidecar Envoy configured with connection_keepalive is not sent
// GOAWAY too_many_pings; the server pings idle clients every 30s to find dead peers.
//
// The codec returns pooled answers (this package's and pkg/rls's) to their pools once
// marshalled. grpc-go (1.85) reads a reply after marshalling it only for stats handlers
// (OutPayload.Payload) and for grpc.EnableTracing's trace log: a server given either
// must not use these options' codec, or would read reused answers.
func ServerOptions(maxBodyBytes int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(recvLimit(maxBodyBytes)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
		// A fixed pool of stream workers instead of a new goroutine per call: a fresh
		// goroutine grows its stack on every Check (measured: ~12% of CPU in
		// runtime.copystack at 64 concurrent streams); a worker keeps its grown stack.
		grpc.NumStreamWorkers(streamWorkers()),
		codecOption(),
	}
}

// streamWorkers sizes the stream worker pool for the concurrency Envoy typically keeps
// in flight (one stream per pending request). grpc-go falls back to a new goroutine
// when every worker is busy, so this bounds nothing; an idle worker costs its stack.
func streamWorkers() uint32 { return uint32(max(128, 32*runtime.GOMAXPROCS(0))) }

// recvLimit is the gRPC receive limit for a body limit: body plus headroom, at least
// gRPC's default.
func recvLimit(maxBodyBytes int) int {
	return max(max(maxBodyBytes, 0)+recvHeadroom, minRecvBytes)
}

// Check decides one request. Policy outcomes are OK or PERMISSION_DENIED responses;
// it returns a gRPC error only when the engine is not ready (Unavailable, so Envoy's
// failure_mode_allow applies) or Envoy gave up on the call (its context error).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	st := s.pool.Get().(*checkState)
	defer s.release(st)
	d, err := s.decide(ctx, st, requestFromCheck(st, req, s.trusted, s.now))
	if err != nil {
		return nil, err
	}
	return checkResponse(&st.req, &d, st.generatedID), nil
}

// decide decides the request translated into st (translation error terr, if any),
// logs and audits it, or returns the gRPC error Check answers instead.
func (s *Server) decide(ctx context.Context, st *checkState, terr error) (engine.Decision, error) {
	r := &st.req
	var d engine.Decision
	if err := terr; err != nil {
		d = invalidRequest(err)
	} else {
		d = s.engine.Decide(ctx, r)
	}
	switch d.Reason {
	case "engine.not_ready":
		s.logger.Debug("check before the first configuration", zap.String("request_id", r.ID))
		return d, status.Error(codes.Unavailable, "portcullis: no configuration loaded")
	case "engine.canceled":
		if err := ctx.Err(); err != nil {
			return d, status.FromContextError(err).Err()
		}
	}
	if s.log != nil {
		s.log.Log(frontend, r, &d)
	}
	if !d.Allow && s.audit != nil {
		s.audit.Deny(frontend, r, &d)
	}
	return d, nil
}

func (s *Server) release(st *checkState) {
	st.reset()
	s.pool.Put(st)
}

// invalidRequest is the deny for a CheckRequest the engine cannot evaluate.
func invalidRequest(err error) engine.Decision {
	status, reason := http.StatusBadRequest, "path.invalid"
	switch err {
	case errNoHTTP:
		reason = "request.invalid"
	case errTooManyHeaders:
		status, reason = http.StatusRequestHeaderFieldsTooLarge, "limits.header_count" // as the proxy answers
	}
	return engine.Decision{
		Status:    status,
		Reason:    reason,
		Message:   err.Error(),
		DecidedBy: frontend,
	}
}
