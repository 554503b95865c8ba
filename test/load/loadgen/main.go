// Command loadgen drives Portcullis's front-ends (and the floor servers they are
// compared with) on loopback: closed-loop at a fixed concurrency, or open-loop at a
// fixed rate, bounded by both a request count and a duration. It prints one line of
// results: requests/s, p50, p99, errors.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ",") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

type config struct {
	mode        string // http | extauthz
	target      string
	path        string
	concurrency int
	conns       int
	duration    time.Duration
	maxRequests int64
	rate        float64 // requests/s; 0 = closed loop
	warmup      time.Duration
	label       string
	headers     headerFlags
	expect      int
}

func main() {
	var c config
	flag.StringVar(&c.mode, "mode", "http", "http or extauthz")
	flag.StringVar(&c.target, "target", "http://127.0.0.1:8000", "URL (http) or host:port (extauthz)")
	flag.StringVar(&c.path, "path", "/api/items", "request path (extauthz)")
	flag.IntVar(&c.concurrency, "c", 64, "concurrent requests in flight")
	flag.IntVar(&c.conns, "conns", 2, "gRPC connections (extauthz)")
	flag.DurationVar(&c.duration, "d", 5*time.Second, "measurement duration (upper bound)")
	flag.Int64Var(&c.maxRequests, "n", 2_000_000, "request count (upper bound)")
	flag.Float64Var(&c.rate, "rate", 0, "fixed request rate per second (open loop); 0 = closed loop")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "warm-up before measuring")
	flag.StringVar(&c.label, "label", "", "label printed with the result")
	flag.Var(&c.headers, "H", "request header 'Name: value' (repeatable)")
	flag.IntVar(&c.expect, "expect", 200, "expected HTTP status (or 200 for ext_authz OK)")
	flag.Parse()
	do, closeFn, err := newDoer(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	defer closeFn()
	if c.warmup > 0 {
		w := c
		w.duration, w.rate = c.warmup, 0
		run(w, do)
	}
	res := run(c, do)
	fmt.Printf("%-28s %10.0f req/s  p50 %8s  p99 %8s  n=%d errors=%d\n", c.label, res.rps,
		res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.n, res.errors)
	if res.errors > 0 {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", res.firstErr)
		os.Exit(1)
	}
}

type doer func(ctx context.Context) error

func newDoer(c config) (doer, func(), error) {
	hdr := http.Header{}
	for _, h := range c.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return nil, nil, fmt.Errorf("bad header %q", h)
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	switch c.mode {
	case "http":
		tr := &http.Transport{MaxIdleConnsPerHost: c.concurrency * 2, MaxConnsPerHost: 0, DisableCompression: true}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.target, nil)
			if err != nil {
				return err
			}
			req.Header = hdr.Clone()
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.expect {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}, tr.CloseIdleConnections, nil
	case "extauthz":
		conns := make([]*grpc.ClientConn, c.conns)
		for i := range conns {
			cc, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, nil, err
			}
			conns[i] = cc
		}
		headers := map[string]string{"x-request-id": "b1b2c3d4-0000-4000-8000-000000000001"}
		for k, vs := range hdr {
			headers[strings.ToLower(k)] = strings.Join(vs, ",")
		}
		req := checkRequest(c.path, headers)
		var next atomic.Uint64
		return func(ctx context.Context) error {
				client := authv3.NewAuthorizationClient(conns[next.Add(1)%uint64(len(conns))])
				resp, err := client.Check(ctx, req)
				if err != nil {
					return err
				}
				if code := resp.GetStatus().GetCode(); (code == 0) != (c.expect == 200) {
					return fmt.Errorf("check status %d", code)
				}
				return nil
			}, func() {
				for _, cc := range conns {
					cc.Close()
				}
			}, nil
	}
	return nil, nil, fmt.Errorf("unknown mode %q", c.mode)
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	n        int64
	errors   int64
	firstErr error
}

// maxSamples bounds the latency samples kept per worker.
const maxSamples = 200_000

func run(c config, do doer) result {
	// Workers stop issuing at the deadline and let in-flight requests finish with their
	// own timeout, so the end of a run never shows up as errors.
	var stop atomic.Bool
	timer := time.AfterFunc(c.duration, func() { stop.Store(true) })
	defer timer.Stop()
	ctx := context.Background()
	var (
		issued, errs atomic.Int64
		mu           sync.Mutex
		all          []time.Duration
		firstErr     error
		wg           sync.WaitGroup
	)
	var tick <-chan time.Time
	if c.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	for w := 0; w < c.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for !stop.Load() && issued.Add(1) <= c.maxRequests {
				if tick != nil {
					<-tick
					if stop.Load() {
						break
					}
				}
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := do(rctx)
				cancel()
				if err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					continue
				}
				if len(lat) < maxSamples {
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	r := result{n: int64(len(all)), errors: errs.Load(), firstErr: firstErr}
	if len(all) > 0 {
		r.p50 = all[len(all)/2]
		r.p99 = all[len(all)*99/100]
		r.rps = float64(len(all)) / elapsed.Seconds()
	}
	return r
}
