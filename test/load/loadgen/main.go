// Command loadgen drives Portcullis's front-ends (and the floor servers they are
// compared with) on loopback: closed-loop at a fixed concurrency, or open-loop at a
// fixed rate, bounded by both a request count and a duration. It prints one line of
// results: requests/s, p50, p99, errors.
//
// Modes:
//   - http: GET -target (a URL) with the -H headers;
//   - extauthz: Envoy ext_authz Check calls for -path with the -H headers, optionally
//     with a -body-bytes raw_body (pack_as_bytes) signed per request with RFC 9421
//     hmac-sha256 (-hmac-key-id, -hmac-secret-file): the signed requests are made
//     before the run, one distinct nonce each, so replay protection can stay on and
//     signing costs nothing during the measurement;
//   - rls: Envoy RLS ShouldRateLimit calls for -domain with one descriptor per -desc.
//
// With -target2 (http mode), requests alternate between -target (with -H) and -target2
// (with -H2) in one run, and one line is printed for each (-label, -label2). Both sides
// then see the same machine at the same moments, so the difference of their latencies
// does not depend on the machine's speed changing between runs (a 2-core VM's does).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ",") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

type config struct {
	mode        string // http | extauthz | rls
	target      string
	path        string
	method      string
	concurrency int
	conns       int
	duration    time.Duration
	maxRequests int64
	rate        float64 // requests/s; 0 = closed loop
	warmup      time.Duration
	label       string
	headers     headerFlags
	target2     string // http: alternate requests with this URL
	headers2    headerFlags
	label2      string
	expect      int

	bodyBytes      int    // extauthz: raw_body size
	hmacKeyID      string // extauthz: sign each request with this key id
	hmacSecretFile string

	domain string      // rls
	descs  headerFlags // rls: "k=v,k2=v2" per descriptor
	hits   uint64      // rls: hits_addend (0: unset)
}

func main() {
	c := parseFlags()
	dos, closeFn, err := newDoers(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	defer closeFn()
	if c.warmup > 0 {
		w := c
		w.duration, w.rate = c.warmup, 0
		run(w, dos)
	}
	results := run(c, dos)
	failed := false
	for i, res := range results {
		label := c.label
		if i == 1 {
			label = c.label2
		}
		fmt.Printf("%-36s %10.0f req/s  p50 %8s  p99 %8s  n=%d errors=%d\n", label, res.rps,
			res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.n, res.errors)
		if res.exhausted {
			fmt.Fprintln(os.Stderr, "loadgen: the pre-signed requests ran out before -d; the run is shorter (raise -n)")
		}
		if res.errors > 0 {
			fmt.Fprintf(os.Stderr, "loadgen: %s: first error: %v\n", label, res.firstErr)
			failed = true
		}
	}
	if failed {
		closeFn()
		os.Exit(1)
	}
}

// newDoers returns the request makers a run alternates between: one, or two with
// -target2.
func newDoers(c config) ([]doer, func(), error) {
	switch {
	case c.target2 == "" && (len(c.headers2) > 0 || c.label2 != ""):
		return nil, nil, fmt.Errorf("-H2 and -label2 need -target2")
	case c.target2 != "" && c.mode != "http":
		return nil, nil, fmt.Errorf("-target2 needs -mode http")
	case c.target2 != "" && (c.label2 == "" || c.label2 == c.label):
		// Results are read back by label: the two lines must be told apart.
		return nil, nil, fmt.Errorf("-target2 needs a -label2 other than -label")
	}
	do, closeFn, err := newDoer(c)
	if err != nil || c.target2 == "" {
		return []doer{do}, closeFn, err
	}
	c2 := c
	c2.target, c2.headers = c.target2, c.headers2
	do2, close2, err := newDoer(c2)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return []doer{do, do2}, func() { closeFn(); close2() }, nil
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.mode, "mode", "http", "http, extauthz or rls")
	flag.StringVar(&c.target, "target", "http://127.0.0.1:8000", "URL (http) or host:port (extauthz, rls)")
	flag.StringVar(&c.path, "path", "/api/items", "request path (extauthz)")
	flag.StringVar(&c.method, "method", "", "request method (extauthz; default GET, POST with -body-bytes)")
	flag.IntVar(&c.concurrency, "c", 64, "concurrent requests in flight")
	flag.IntVar(&c.conns, "conns", 2, "gRPC connections (extauthz, rls)")
	flag.DurationVar(&c.duration, "d", 5*time.Second, "measurement duration (upper bound)")
	flag.Int64Var(&c.maxRequests, "n", 2_000_000, "request count (upper bound; also the number of pre-signed requests with -hmac-key-id)")
	flag.Float64Var(&c.rate, "rate", 0, "fixed request rate per second (open loop); 0 = closed loop")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "warm-up before measuring")
	flag.StringVar(&c.label, "label", "", "label printed with the result")
	flag.Var(&c.headers, "H", "request header 'Name: value' (repeatable)")
	flag.StringVar(&c.target2, "target2", "", "http: alternate requests between -target and this URL, one result line each")
	flag.Var(&c.headers2, "H2", "request header for -target2 (repeatable)")
	flag.StringVar(&c.label2, "label2", "", "label printed with -target2's result")
	flag.IntVar(&c.expect, "expect", 200, "expected HTTP status (200 means OK for ext_authz and RLS)")
	flag.IntVar(&c.bodyBytes, "body-bytes", 0, "extauthz: raw_body of this many bytes (pack_as_bytes)")
	flag.StringVar(&c.hmacKeyID, "hmac-key-id", "", "extauthz: sign each request (RFC 9421 hmac-sha256) with this key id")
	flag.StringVar(&c.hmacSecretFile, "hmac-secret-file", "", "extauthz: file holding the HMAC secret (raw bytes)")
	flag.StringVar(&c.domain, "domain", "", "rls: rate limit domain")
	flag.Var(&c.descs, "desc", "rls: one descriptor as 'key=value,key2=value2' (repeatable)")
	flag.Uint64Var(&c.hits, "hits", 0, "rls: hits_addend (0: unset)")
	flag.Parse()
	return c
}

type doer func(ctx context.Context) error

// errExhausted ends a run early: every pre-signed request was sent.
var errExhausted = errors.New("pre-signed requests exhausted")

func newDoer(c config) (doer, func(), error) {
	switch c.mode {
	case "http":
		return newHTTPDoer(c)
	case "extauthz":
		return newCheckDoer(c)
	case "rls":
		return newRLSDoer(c)
	}
	return nil, nil, fmt.Errorf("unknown mode %q", c.mode)
}

type result struct {
	rps       float64
	p50, p99  time.Duration
	n         int64
	errors    int64
	firstErr  error
	exhausted bool
}

// maxSamples bounds the latency samples kept per worker.
const maxSamples = 200_000

// run drives dos with c.concurrency workers until c.duration or c.maxRequests; request
// i goes to dos[i % len(dos)], and the result is per doer. At a fixed rate, request i
// is due at start + i/rate and its latency is measured from that due time, so a server
// that falls behind shows as latency, not as a lower rate.
func run(c config, dos []doer) []result {
	// Workers stop issuing at the deadline and let in-flight requests finish with their
	// own timeout, so the end of a run never shows up as errors.
	var stop, exhausted atomic.Bool
	timer := time.AfterFunc(c.duration, func() { stop.Store(true) })
	defer timer.Stop()
	sides := len(dos)
	var (
		issued   atomic.Int64
		errs     = make([]atomic.Int64, sides)
		mu       sync.Mutex
		all      = make([][]time.Duration, sides)
		firstErr = make([]error, sides)
		wg       sync.WaitGroup
	)
	var interval time.Duration
	if c.rate > 0 {
		interval = time.Duration(float64(time.Second) / c.rate)
	}
	start := time.Now()
	for w := 0; w < c.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([][]time.Duration, sides)
			for k := range lat {
				lat[k] = make([]time.Duration, 0, 4096/sides)
			}
			for !stop.Load() {
				i := issued.Add(1)
				if i > c.maxRequests {
					break
				}
				side := int((i - 1) % int64(sides))
				t0 := time.Now()
				if interval > 0 {
					t0 = start.Add(time.Duration(i-1) * interval)
					if d := time.Until(t0); d > 0 {
						time.Sleep(d)
					}
					if stop.Load() {
						break
					}
				}
				err := callOnce(dos[side])
				if errors.Is(err, errExhausted) {
					exhausted.Store(true)
					stop.Store(true)
					break
				}
				if err != nil {
					if errs[side].Add(1) == 1 {
						mu.Lock()
						firstErr[side] = err
						mu.Unlock()
					}
					continue
				}
				if len(lat[side]) < maxSamples {
					lat[side] = append(lat[side], time.Since(t0))
				}
			}
			mu.Lock()
			for k := range lat {
				all[k] = append(all[k], lat[k]...)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	results := make([]result, sides)
	for k := range results {
		r := &results[k]
		slices.Sort(all[k])
		*r = result{n: int64(len(all[k])), errors: errs[k].Load(), firstErr: firstErr[k], exhausted: exhausted.Load()}
		if len(all[k]) > 0 {
			r.p50 = all[k][len(all[k])/2]
			r.p99 = all[k][len(all[k])*99/100]
			r.rps = float64(len(all[k])) / elapsed.Seconds()
		}
	}
	return results
}

// callOnce runs one request under its own timeout.
func callOnce(do doer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return do(ctx)
}
