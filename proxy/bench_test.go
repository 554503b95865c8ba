package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
)

// BenchmarkProxy compares a bare httputil.ReverseProxy with Portcullis's proxy (raw
// scanner, engine decision on an API-key route, identity headers), both served over
// loopback TCP in front of the same upstream, driven by the same pooled client.
func BenchmarkProxy(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)
	transport := func() *http.Transport {
		o := Options{MaxIdleConnsPerHost: 256, DialTimeout: DefaultDialTimeout, IdleConnTimeout: DefaultIdleConnTimeout,
			ResponseHeaderTimeout: DefaultResponseHeaderTimeout}
		return o.newTransport()
	}

	bare := &httputil.ReverseProxy{Transport: transport(), Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	bareLn := listenLoopback(b)
	bareSrv := &http.Server{Handler: bare}
	go func() { _ = bareSrv.Serve(bareLn) }()
	defer bareSrv.Close()

	// Portcullis with its default transport: the same pool, plus the stream idle
	// deadlines on upstream connections.
	p, err := New(Options{Engine: engine.New(benchTable(b)), Upstream: target})
	if err != nil {
		b.Fatal(err)
	}
	ln := listenLoopback(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	run := func(b *testing.B, addr string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}
		defer client.CloseIdleConnections()
		url := "http://" + addr + "/api/items?limit=10"
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Api-Key", "good-key")
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Errorf("status %d", res.StatusCode)
					return
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, bareLn.Addr().String()) })
	b.Run("portcullis", func(b *testing.B) { run(b, ln.Addr().String()) })
}

// BenchmarkServeHTTP isolates the handler's own cost and allocations: the upstream is
// an in-memory RoundTripper answering a fixed response, the client a recorder.
func BenchmarkServeHTTP(b *testing.B) {
	target, _ := url.Parse("http://upstream.test")
	rt := fixedUpstream{}
	bare := &httputil.ReverseProxy{Transport: rt, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	p, err := New(Options{Engine: engine.New(benchTable(b)), Upstream: target, Transport: rt})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"portcullis", p}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "http://app.example/api/items?limit=10", nil)
				r.Header.Set("X-Api-Key", "good-key")
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

type fixedUpstream struct{}

func (fixedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: 2,
		Body: io.NopCloser(strings.NewReader("ok")), Request: r,
	}, nil
}

func listenLoopback(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

// benchTable is one API-key route setting the identity headers, like issue 2's target.
func benchTable(b *testing.B) *engine.RouteTable {
	tbl, err := engine.NewRouteTable([]*engine.Route{{
		Name: "api", Match: engine.Match{PathPrefix: "/api/"},
		Pipeline: &engine.Pipeline{Name: "api", HideHeaders: []string{"x-api-key"}, StripQuery: []string{"api_key"},
			Authenticate: []engine.Stage{{Name: "apikey", Phase: engine.PhaseAuthenticate, Auth: apiKeyAuth}}},
	}}, engine.TableOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return tbl
}
