// Command floor runs the reference servers the front-ends are measured against, built
// on the same stacks: an always-allow ext_authz gRPC server (the decisions/s ceiling of
// grpc-go itself on this machine) and a bare httputil.ReverseProxy with no checks.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/portcullis/portcullis/pkg/extauthz"
)

type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{Code: 0},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

type allowRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
}

func (allowRLS) ShouldRateLimit(_ context.Context, r *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	st := make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(r.GetDescriptors()))
	for i := range st {
		st[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: st}, nil
}

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:9101", "always-allow ext_authz + RLS gRPC address ('' disables)")
	proxyAddr := flag.String("proxy", "127.0.0.1:8100", "bare reverse proxy address ('' disables)")
	upstream := flag.String("upstream", "http://127.0.0.1:8080", "upstream for the bare proxy")
	pprofAddr := flag.String("pprof", "", "serve /debug/pprof/ on this address, to profile the floor as Portcullis is ('' disables)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *grpcAddr != "" {
		ln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			log.Fatal(err)
		}
		// The same server options as Portcullis's gRPC listener (codec, stream workers,
		// limits), so the ratio measures only what Portcullis does per request.
		s := grpc.NewServer(extauthz.ServerOptions(10 << 20)...)
		authv3.RegisterAuthorizationServer(s, allowAll{})
		rlsv3.RegisterRateLimitServiceServer(s, allowRLS{})
		go func() { _ = s.Serve(ln) }()
		defer s.Stop()
	}
	if *proxyAddr != "" {
		u, err := url.Parse(*upstream)
		if err != nil {
			log.Fatal(err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256 // the same pool size Portcullis uses (PROXY.md §17)
		rp := &httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		}}
		srv := &http.Server{Addr: *proxyAddr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
		defer srv.Close()
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.ListenAndServe() }()
		defer srv.Close()
	}
	<-ctx.Done()
}
