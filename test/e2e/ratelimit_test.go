package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis/portcullis/test/redisharness"
)

// writeConfig writes a document into the test's directory and returns its path.
func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// okUpstream answers 200 to everything.
func okUpstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// scrapeMetric returns the value of one exposed series, e.g.
// `portcullis_store_available` or `portcullis_bruteforce_bans_total{kind="ip"}`; 0 when absent.
func scrapeMetric(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return f
		}
	}
	return 0
}

// logged waits for substr in the sidecar's output; logs are flushed every second.
func logged(s *sidecar, substr string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(s.logs.String(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// loadClient keeps enough idle connections for the load loops.
func loadClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// fetch sends one GET and returns its status, headers and latency.
func fetch(t *testing.T, c *http.Client, url string, hdr map[string]string) (int, http.Header, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, time.Since(start)
}

const accuracyDoc = `
store:
  valkey: {addresses: [%s], timeout: 250ms}
  replicas: 2
policies:
  public:
    anonymous: true
    inspect:
      - ratelimit: {limits: [{name: accuracy, rate: %d/s, burst: %d, on_store_error: deny}]}
routes: [{name: all, policy: public}]
`

// Two sidecars share one limit through one Valkey/Redis server; 64 clients hammer
// both proxies over several windows. GCRA's bound (docs/ratelimit.md): over any
// interval W, at most burst + W·rate requests are admitted, whichever replica admits them.
func TestRateLimitAccuracyTwoReplicas(t *testing.T) {
	const (
		rate, burst = 100, 20
		clients     = 64
		runFor      = 3 * time.Second
		perClient   = 2000 // bounds the loop whatever the speed
	)
	srv := redisharness.Start(t)
	cfg := writeConfig(t, fmt.Sprintf(accuracyDoc, srv.Addr(), rate, burst))
	up := okUpstream(t)
	sidecars := []*sidecar{startSidecar(t, cfg, up), startSidecar(t, cfg, up)}
	c := loadClient()

	var admitted, refused, other [2]atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(runFor)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perClient && time.Now().Before(deadline); n++ {
				s := (i + n) % 2
				resp, err := c.Get("http://" + sidecars[s].proxy + "/x")
				if err != nil {
					other[s].Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					admitted[s].Add(1)
				case 429:
					refused[s].Add(1)
				default:
					other[s].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	w := time.Since(start)
	total := admitted[0].Load() + admitted[1].Load()
	bound := int64(burst) + int64(math.Ceil(w.Seconds()*rate))
	t.Logf("%s: admitted %d (%d + %d) over %v, bound %d; refused %d; other %d",
		srv.Version(), total, admitted[0].Load(), admitted[1].Load(), w.Round(time.Millisecond), bound,
		refused[0].Load()+refused[1].Load(), other[0].Load()+other[1].Load())
	if total > bound {
		t.Errorf("admitted %d requests in %v; the documented bound is %d", total, w, bound)
	}
	if admitted[0].Load() == 0 || admitted[1].Load() == 0 || refused[0].Load()+refused[1].Load() == 0 {
		t.Errorf("the run did not exercise the limit on both replicas")
	}
	// The limit is shared, so together the replicas admit about rate·W, not twice it.
	if float64(total) < 0.5*w.Seconds()*rate {
		t.Errorf("admitted only %d in %v (other answers: %d)", total, w, other[0].Load()+other[1].Load())
	}
}

const outageDoc = `
store:
  valkey: {addresses: [%s], timeout: 500ms, dial_timeout: 200ms}
  replicas: 2
policies:
  deny: {anonymous: true, inspect: [{ratelimit: {limits: [{name: o-deny, rate: 6/min, on_store_error: deny}]}}]}
  allow: {anonymous: true, inspect: [{ratelimit: {limits: [{name: o-allow, rate: 6/min, on_store_error: allow}]}}]}
  local: {anonymous: true, inspect: [{ratelimit: {limits: [{name: o-local, rate: 6/min, on_store_error: local}]}}]}
routes:
  - {name: deny, policy: deny, match: {path: {prefix: /deny}}}
  - {name: allow, policy: allow, match: {path: {prefix: /allow}}}
  - {name: local, policy: local, match: {path: {prefix: /local}}}
`

// The store dies mid-run: each on_store_error policy behaves as configured, no request
// waits much past the store timeout, the process keeps serving, and it recovers when
// the store comes back.
func TestRateLimitStoreOutage(t *testing.T) {
	srv := redisharness.Start(t)
	s := startSidecar(t, writeConfig(t, fmt.Sprintf(outageDoc, srv.Addr())), okUpstream(t))
	c := loadClient()
	base := "http://" + s.proxy
	statuses := func(path string, n int) (map[int]int, time.Duration) {
		got := map[int]int{}
		var slowest time.Duration
		for range n {
			code, _, took := fetch(t, c, base+path, nil)
			got[code]++
			slowest = max(slowest, took)
		}
		return got, slowest
	}
	// Up: the shared limit of 6 applies.
	if got, _ := statuses("/local", 8); got[200] != 6 || got[429] != 2 {
		t.Fatalf("store up: %v", got)
	}

	srv.Stop()
	var slowest time.Duration
	got, took := statuses("/deny", 5)
	slowest = max(slowest, took)
	if got[503] != 5 {
		t.Errorf("deny policy while the store is down: %v, want 5×503", got)
	}
	got, took = statuses("/allow", 10)
	slowest = max(slowest, took)
	if got[200] != 10 {
		t.Errorf("allow policy while the store is down: %v, want 10×200", got)
	}
	// local: this replica's share of 6/min among 2 replicas is a burst of 3.
	got, took = statuses("/local", 6)
	slowest = max(slowest, took)
	if got[200] != 3 || got[429] != 3 {
		t.Errorf("local policy while the store is down: %v, want 3×200 then 3×429", got)
	}
	if slowest > 2*time.Second {
		t.Errorf("a request took %v while the store was down (store timeout 500ms)", slowest)
	}
	select {
	case <-s.done:
		t.Fatalf("sidecar exited during the outage:\n%s", s.logs)
	default:
	}
	if scrapeMetric(t, s.admin, "portcullis_store_available") != 0 ||
		scrapeMetric(t, s.admin, `portcullis_store_errors_total{op="take"}`) < 1 ||
		scrapeMetric(t, s.admin, `portcullis_store_fallbacks_total{op="take",policy="deny"}`) < 5 ||
		scrapeMetric(t, s.admin, `portcullis_store_fallbacks_total{op="take",policy="allow"}`) < 10 ||
		scrapeMetric(t, s.admin, `portcullis_store_fallbacks_total{op="take",policy="local"}`) < 6 {
		t.Errorf("outage metrics missing")
	}
	if !logged(s, "shared store unavailable") {
		t.Errorf("no log line for the outage")
	}

	srv.Restart()
	recovered := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, _, _ := fetch(t, c, base+"/deny", nil); code == 200 {
			recovered = true
			break
		}
	}
	if !recovered {
		t.Fatalf("no recovery after the store restarted:\n%s", s.logs)
	}
	if scrapeMetric(t, s.admin, "portcullis_store_available") != 1 || !logged(s, "shared store recovered") {
		t.Errorf("recovery not reported")
	}
	t.Logf("slowest request during the outage: %v", slowest)
}

const headersDoc = `
network: {trusted_proxies: [127.0.0.1/32]}
policies:
  public:
    anonymous: true
    inspect:
      - ratelimit:
          headers_on_allow: true
          limits: [{name: per-ip, key: client_ip, rate: 2/min}]
routes: [{name: all, policy: public}]
`

// 429 with Retry-After and the IETF RateLimit headers, through the proxy and through
// ext_authz (denied_response headers; response_headers_to_add on OK).
func TestRateLimitHeaders(t *testing.T) {
	s := startSidecar(t, writeConfig(t, headersDoc), okUpstream(t))
	c := loadClient()
	from := map[string]string{"X-Forwarded-For": "198.51.100.20"}
	// Seconds are rounded up from the real clock: a slow machine may let a few pass
	// between requests.
	for i, want := range []struct{ r, t int }{{1, 30}, {0, 60}} {
		code, h, _ := fetch(t, c, "http://"+s.proxy+"/x", from)
		if code != 200 || h.Get("Ratelimit-Policy") != `"per-ip";q=2;w=60` || !rateLimitNear(h.Get("Ratelimit"), want.r, want.t) {
			t.Fatalf("proxy request %d: %d %v", i, code, h)
		}
	}
	code, h, _ := fetch(t, c, "http://"+s.proxy+"/x", from)
	if code != 429 || !secondsNear(h.Get("Retry-After"), 30) || !rateLimitNear(h.Get("Ratelimit"), 0, 60) {
		t.Fatalf("proxy over the limit: %d %v", code, h)
	}

	cc, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := authv3.NewAuthorizationClient(cc)
	req := checkRequest("/x", nil)
	req.Attributes.Source.Address.GetSocketAddress().Address = "203.0.113.40"
	for i := range 2 {
		resp, err := client.Check(ctx, req)
		if err != nil || resp.Status.Code != 0 {
			t.Fatalf("ext_authz request %d: %v %v", i, resp, err)
		}
		got := headerMap(resp.GetOkResponse().GetResponseHeadersToAdd())
		if got["ratelimit-policy"] != `"per-ip";q=2;w=60` || !strings.HasPrefix(got["ratelimit"], `"per-ip";r=`) {
			t.Fatalf("ext_authz OK response_headers_to_add: %v", got)
		}
	}
	resp, err := client.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	den := resp.GetDeniedResponse()
	got := headerMap(den.GetHeaders())
	if resp.Status.Code == 0 || den.GetStatus().GetCode() != 429 || !secondsNear(got["retry-after"], 30) ||
		got["ratelimit-policy"] != `"per-ip";q=2;w=60` || !rateLimitNear(got["ratelimit"], 0, 60) {
		t.Fatalf("ext_authz over the limit: %v", resp)
	}
	if scrapeMetric(t, s.admin, `portcullis_ratelimit_hits_total{limit="per-ip",shadow="false"}`) != 2 {
		t.Errorf("rate-limit hits not counted")
	}
}

// rateLimitNear reports whether v is per-ip's RateLimit item with remaining r and a
// reset within 3 s below t.
func rateLimitNear(v string, r, t int) bool {
	var gotR, gotT int
	if n, err := fmt.Sscanf(v, `"per-ip";r=%d;t=%d`, &gotR, &gotT); n != 2 || err != nil {
		return false
	}
	return v == fmt.Sprintf(`"per-ip";r=%d;t=%d`, gotR, gotT) && gotR == r && gotT <= t && gotT >= t-3
}

// secondsNear reports whether v is a number of seconds within 3 below want.
func secondsNear(v string, want int) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n <= want && n >= want-3
}

func headerMap(hs []*corev3.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
	}
	return m
}

const bruteForceDoc = `
network: {trusted_proxies: [127.0.0.1/32]}
providers:
  apikeys:
    - id: 8pvap8md
      subject: demo
      hash: "sha512:cee6e28f5bb00bdbf7783e85ab9099f14b3ffc635166a99a43475ea96d7ac70209c49ea93183f4f252a2dd01a8ad3738d4fa6c0789bbf6f3f46c52e18ff441c6"
policies:
  api:
    inspect:
      - bruteforce: {low: 3, medium: 5, high: 7, critical: 20, delay: 200ms, max_delay: 400ms, ban_duration: 1m}
    authenticate: [{apikey: {}}]
routes: [{name: api, policy: api}]
`

// Repeated bad API keys from one address: 401s, then delayed 401s, then a ban (429
// with Retry-After, even with a valid key); another client is not affected.
func TestBruteForceThroughProxy(t *testing.T) {
	s := startSidecar(t, writeConfig(t, bruteForceDoc), okUpstream(t))
	c := loadClient()
	url := "http://" + s.proxy + "/api/x"
	attacker := func(key string) map[string]string {
		return map[string]string{"X-Forwarded-For": "198.51.100.66", "X-API-Key": key}
	}
	var codes []int
	for i := 1; i <= 8; i++ {
		bad := fmt.Sprintf("pk_attack%d_%s", i, strings.Repeat("q", 56))
		code, h, took := fetch(t, c, url, attacker(bad))
		codes = append(codes, code)
		// From the low level (3 failures) on, each attempt waits at least the delay: a
		// lower bound, which a timer never undercuts.
		if i >= 4 && i <= 7 && took < 200*time.Millisecond {
			t.Errorf("attempt %d answered in %v, want a delay of at least 200ms", i, took)
		}
		if code == 429 && h.Get("Retry-After") == "" {
			t.Errorf("ban without Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[401 401 401 401 401 401 401 429]" {
		t.Fatalf("attacker statuses %v", codes)
	}
	key := demoKey(t)
	if code, _, _ := fetch(t, c, url, attacker(key)); code != 429 {
		t.Errorf("banned address with a valid key: %d, want 429", code)
	}
	if code, _, _ := fetch(t, c, url, map[string]string{"X-Forwarded-For": "198.51.100.67", "X-API-Key": key}); code != 200 {
		t.Errorf("good client: %d", code)
	}
	if scrapeMetric(t, s.admin, `portcullis_bruteforce_bans_total{kind="ip"}`) != 1 ||
		scrapeMetric(t, s.admin, `portcullis_bruteforce_level_total{kind="ip",level="medium"}`) != 1 {
		t.Errorf("brute-force metrics missing")
	}
	if !logged(s, `"msg":"ban","event":"ban","kind":"ip","key":"198.51.100.66"`) {
		t.Errorf("no audit line for the ban:\n%s", s.logs)
	}
	logs := s.logs.String()
	if strings.Contains(logs, strings.Repeat("q", 56)) || strings.Contains(logs, key[12:]) {
		t.Errorf("a key's secret reached the logs")
	}
}
