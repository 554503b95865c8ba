package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/extauthz"
	"github.com/portcullis/portcullis/pkg/forwardauth"
	"github.com/portcullis/portcullis/pkg/telemetry"
	"github.com/portcullis/portcullis/proxy"
)

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "Run the sidecar: the reverse proxy, the Envoy ext_authz gRPC server, the forward-auth\n"+
		"endpoint and the admin listener (health, readiness, metrics), as the document configures.\n"+
		"The document is reloaded when its content changes (and on SIGHUP); an invalid one is\n"+
		"rejected and the running configuration stays. SIGINT/SIGTERM drain and stop.", stderr)
	boot := config.NewBootstrap(fs)
	watch := fs.Duration("watch-interval", 2*time.Second, "how often to check the document for changes (0: only on SIGHUP)")
	pprofOn := fs.Bool("pprof", false, "serve Go profiles at /debug/pprof/ on the admin listener")
	if code, done := parseOnlyFlags(fs, args); done {
		return code
	}
	tuneGC()
	doc, err := boot.Load()
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	log, out, err := telemetry.NewLoggerOutput(doc.Log.Level)
	if err != nil {
		fmt.Fprintln(stderr, "portcullis:", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	s := newServer(boot, log, telemetry.NewDecisionLogTo(out, log, doc.Log.Decisions))
	s.admin.pprof = *pprofOn
	if err := s.apply(doc); err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.run(ctx, doc, *watch); err != nil {
		log.Error("serve", zap.Error(err))
		return 1
	}
	return 0
}

// sidecarGOGC is the GC target percentage serve uses unless GOGC is set. A sidecar's
// live heap is a few MiB, so Go's default of 100 collects after every few MiB of
// per-request garbage: at tens of thousands of decisions a second that is a large share
// of the CPU (GC assists, and stack shrinking that makes request goroutines regrow
// their stacks). 400 trades a few MiB of memory for that CPU. GOMEMLIMIT, when set,
// still bounds the heap.
const sidecarGOGC = 400

// tuneGC applies sidecarGOGC unless the operator chose GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(sidecarGOGC)
	}
}

// server owns the engine, the telemetry and every listener of one process.
type server struct {
	boot      *config.Bootstrap
	log       *zap.Logger
	metrics   *telemetry.Metrics
	audit     *telemetry.Audit
	decisions *telemetry.DecisionLog
	engine    *engine.Engine
	admin     *admin
	reload    *reloader
	state     *state // shared store and RLS (state.go), created by the first apply
}

func newServer(boot *config.Bootstrap, log *zap.Logger, decisions *telemetry.DecisionLog) *server {
	m := telemetry.NewMetrics()
	s := &server{
		boot: boot, log: log, metrics: m,
		audit: telemetry.NewAudit(log), decisions: decisions,
		engine: engine.New(nil, engine.WithRecorder(m)),
		admin:  &admin{registry: m.Registry},
	}
	s.reload = &reloader{s: s}
	return s
}

// run starts every configured listener and blocks until ctx is cancelled, then drains.
func (s *server) run(ctx context.Context, doc *config.Document, watch time.Duration) error {
	g, ctx := errgroup.WithContext(ctx)
	if err := s.serveGRPC(ctx, g, doc); err != nil {
		return err
	}
	if err := s.serveProxy(ctx, g, doc); err != nil {
		return err
	}
	if err := s.serveForwardAuth(ctx, g, doc); err != nil {
		return err
	}
	// The admin listener comes last: /readyz answers 200 only once every other
	// listener is bound, so a probe (or a test) that saw ready never meets a refused
	// connection on the proxy, gRPC or forward-auth port.
	if err := s.serveAdmin(ctx, g, doc); err != nil {
		return err
	}
	g.Go(func() error { s.reload.watch(ctx, watch); return nil })
	s.log.Info("portcullis started", zap.String("version", version), zap.String("config", doc.Source),
		zap.String("proxy", doc.Listeners.Proxy), zap.String("grpc", doc.Listeners.GRPC),
		zap.String("admin", doc.Listeners.Admin), zap.String("forward_auth", doc.Listeners.ForwardAuth))
	err := g.Wait()
	s.state.close()
	s.log.Info("portcullis stopped")
	return err
}

func listen(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener %s: %w", name, addr, err)
	}
	return ln, nil
}

// serveHTTP runs srv on ln until ctx ends, then shuts it down within timeout.
func serveHTTP(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener, timeout time.Duration) {
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}

func (s *server) serveAdmin(ctx context.Context, g *errgroup.Group, doc *config.Document) error {
	if doc.Listeners.Admin == "" {
		return nil
	}
	ln, err := listen("admin", doc.Listeners.Admin)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.admin.handler(), ReadHeaderTimeout: doc.Server.ReadHeaderTimeout,
		IdleTimeout: doc.Server.IdleTimeout, MaxHeaderBytes: doc.Server.MaxHeaderBytes}
	serveHTTP(ctx, g, srv, ln, doc.Server.ShutdownTimeout)
	return nil
}

func (s *server) serveGRPC(ctx context.Context, g *errgroup.Group, doc *config.Document) error {
	if doc.Listeners.GRPC == "" {
		return nil
	}
	ln, err := listen("grpc", doc.Listeners.GRPC)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(extauthz.ServerOptions(int(doc.Server.MaxBodyBytes))...)
	extauthz.New(extauthz.Options{Engine: s.engine, TrustedProxies: doc.Network.TrustedProxies,
		Log: s.decisions, Audit: s.audit, Logger: s.log}).Register(gs)
	s.state.registerRLS(gs)
	hs := extauthz.RegisterHealth(gs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g.Go(func() error { return gs.Serve(ln) })
	g.Go(func() error {
		<-ctx.Done()
		hs.Shutdown() // report NOT_SERVING while draining
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(doc.Server.ShutdownTimeout):
			gs.Stop()
		}
		return nil
	})
	return nil
}

func (s *server) serveProxy(ctx context.Context, g *errgroup.Group, doc *config.Document) error {
	if doc.Listeners.Proxy == "" {
		return nil
	}
	up, err := url.Parse(doc.Upstream.URL)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	p, err := proxy.New(proxy.Options{
		Engine: s.engine, Upstream: up,
		DialTimeout: doc.Upstream.Timeouts.Dial, ResponseHeaderTimeout: doc.Upstream.Timeouts.ResponseHeader,
		IdleConnTimeout: doc.Upstream.Timeouts.IdleConn, MaxIdleConnsPerHost: doc.Upstream.MaxIdleConnsPerHost,
		TrustedProxies:    doc.Network.TrustedProxies,
		ReadHeaderTimeout: doc.Server.ReadHeaderTimeout, IdleTimeout: doc.Server.IdleTimeout,
		ShutdownTimeout: doc.Server.ShutdownTimeout, StreamIdleTimeout: doc.Server.StreamIdleTimeout,
		MaxHeaderBytes: doc.Server.MaxHeaderBytes,
		MaxHeaderCount: doc.Server.MaxHeaderCount, MaxBodyBytes: doc.Server.MaxBodyBytes,
		WebSocket: proxy.WebSocketOptions{
			MaxMessageBytes: doc.Server.WebSocket.MaxMessageBytes, MessagesPerSecond: doc.Server.WebSocket.MessagesPerSecond,
			Burst: doc.Server.WebSocket.Burst, OnClose: telemetry.NewWebSocketMetrics(s.metrics.Registry).Closed,
		},
		Log: s.decisions, Audit: s.audit, Logger: s.log,
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	ln, err := listen("proxy", doc.Listeners.Proxy)
	if err != nil {
		return err
	}
	g.Go(func() error { return p.Serve(ctx, ln) })
	return nil
}

func (s *server) serveForwardAuth(ctx context.Context, g *errgroup.Group, doc *config.Document) error {
	if doc.Listeners.ForwardAuth == "" {
		return nil
	}
	ln, err := listen("forward_auth", doc.Listeners.ForwardAuth)
	if err != nil {
		return err
	}
	h := forwardauth.New(forwardauth.Options{Engine: s.engine, TrustedProxies: doc.Network.TrustedProxies,
		Log: s.decisions, Audit: s.audit})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: doc.Server.ReadHeaderTimeout,
		IdleTimeout: doc.Server.IdleTimeout, MaxHeaderBytes: doc.Server.MaxHeaderBytes}
	serveHTTP(ctx, g, srv, ln, doc.Server.ShutdownTimeout)
	return nil
}

// printConfigErrors prints each configuration problem on its own line.
func printConfigErrors(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}
