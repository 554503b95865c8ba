package filters

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/valkeystore"
)

func buildWith(t *testing.T, doc string, deps Deps) *engine.Engine {
	t.Helper()
	d, err := config.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	c, err := Build(d, deps)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() { _ = c.Table.Close() })
	return engine.New(c.Table)
}

func decideFrom(e *engine.Engine, ip, target string, hdr map[string]string) engine.Decision {
	r := enginetest.NewRequest("GET", target)
	r.Peer.IP = netip.MustParseAddr(ip)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return e.Decide(context.Background(), r)
}

// hits records OnRateLimited calls.
type hits struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *hits) hit(limit string, shadow bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if shadow {
		limit += "/shadow"
	}
	h.n[limit]++
}

func TestBuildRateLimit(t *testing.T) {
	doc := `
upstream: {url: http://127.0.0.1:8080}
providers:
  apikeys:
    - {id: k7f3a9c2, subject: billing, hash: "` + hashOf(testKey) + `"}
policies:
  api:
    inspect:
      - ratelimit:
          headers_on_allow: true
          limits:
            - {name: per-ip, key: client_ip, rate: 2/min}
            - {name: all, rate: 1/min, shadow: true}
    authenticate: [{apikey: {}}]
    limit:
      - ratelimit: {limits: [{name: per-key, key: api_key, rate: 3/h}]}
routes: [{name: api, policy: api}]
`
	h := &hits{n: map[string]int{}}
	mem := store.NewMemory(store.MemoryOptions{})
	e := buildWith(t, doc, Deps{Store: mem, OnRateLimited: h.hit})
	key := map[string]string{"X-API-Key": testKey}

	d := decideFrom(e, "192.0.2.1", "/a", key)
	if !d.Allow || d.Response.Get("Ratelimit-Policy") != `"per-ip";q=2;w=60` || !strings.HasPrefix(d.Response.Get("Ratelimit"), `"per-ip";r=1;t=`) {
		t.Fatalf("first: %d %s %v", d.Status, d.Reason, d.Response)
	}
	if d = decideFrom(e, "192.0.2.1", "/a", key); !d.Allow || len(d.Shadowed) != 1 {
		t.Fatalf("second: %d %s shadowed %v", d.Status, d.Reason, d.Shadowed)
	}
	d = decideFrom(e, "192.0.2.1", "/a", key)
	if d.Status != 429 || d.Reason != "ratelimit.over" || d.Response.Get("Retry-After") == "" {
		t.Fatalf("third: %d %s %v", d.Status, d.Reason, d.Response)
	}
	// Another address has its own per-ip budget; the per-key limit (limit phase) counts
	// the two allowed requests above and then this one.
	if d = decideFrom(e, "192.0.2.2", "/a", key); !d.Allow {
		t.Fatalf("other ip: %d %s", d.Status, d.Reason)
	}
	d = decideFrom(e, "192.0.2.3", "/a", key)
	if d.Status != 429 || !strings.Contains(strings.Join(d.Response.Values("Ratelimit-Policy"), ", "), `"per-key";q=3;w=3600`) {
		t.Fatalf("per-key: %d %s %v", d.Status, d.Reason, d.Response)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n["per-ip"] != 1 || h.n["per-key"] != 1 || h.n["all/shadow"] < 3 {
		t.Errorf("reported hits %v", h.n)
	}
}

// A process's store outlives a reload: a rebuilt table keeps counting.
func TestRateLimitSurvivesRebuild(t *testing.T) {
	doc := `
upstream: {url: http://127.0.0.1:8080}
policies:
  p:
    anonymous: true
    inspect: [{ratelimit: {limits: [{name: l, key: client_ip, rate: 2/h}]}}]
routes: [{name: r, policy: p}]
`
	deps := Deps{Store: store.NewMemory(store.MemoryOptions{})}
	e1 := buildWith(t, doc, deps)
	e2 := buildWith(t, doc, deps)
	for i, e := range []*engine.Engine{e1, e2, e2} {
		d := decideFrom(e, "198.51.100.1", "/", nil)
		if d.Allow != (i < 2) {
			t.Fatalf("request %d: allow %v (%d %s)", i, d.Allow, d.Status, d.Reason)
		}
	}
}

// Each limit's on_store_error applies when the shared store is down: a real Valkey
// client pointed at a port nothing listens on, behind the Guard cmd uses.
func TestRateLimitStoreFailurePolicies(t *testing.T) {
	vs, err := valkeystore.New(valkeystore.Options{Addrs: []string{"127.0.0.1:1"}, Timeout: 50 * time.Millisecond,
		DialTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	var mu sync.Mutex
	fallbacks := map[string]int{}
	g := store.NewGuard(vs, store.NewMemory(store.MemoryOptions{}), store.GuardOptions{Replicas: 2,
		OnFallback: func(op string, p store.Policy) { mu.Lock(); fallbacks[p.String()]++; mu.Unlock() }})
	doc := `
upstream: {url: http://127.0.0.1:8080}
policies:
  deny: {anonymous: true, inspect: [{ratelimit: {limits: [{name: d, rate: 4/h, on_store_error: deny}]}}]}
  allow: {anonymous: true, inspect: [{ratelimit: {limits: [{name: a, rate: 4/h, on_store_error: allow}]}}]}
  local: {anonymous: true, inspect: [{ratelimit: {limits: [{name: l, rate: 4/h}]}}]}
routes:
  - {name: deny, policy: deny, match: {path: {prefix: /deny}}}
  - {name: allow, policy: allow, match: {path: {prefix: /allow}}}
  - {name: local, policy: local, match: {path: {prefix: /local}}}
`
	e := buildWith(t, doc, Deps{Store: g})
	count := func(path string) (allowed int, statuses map[int]int) {
		statuses = map[int]int{}
		for range 6 {
			d := decideFrom(e, "192.0.2.9", path, nil)
			statuses[d.Status]++
			if d.Allow {
				allowed++
			}
		}
		return allowed, statuses
	}
	if n, st := count("/deny"); n != 0 || st[503] != 6 {
		t.Errorf("deny: %v", st)
	}
	if n, st := count("/allow"); n != 6 {
		t.Errorf("allow: %v", st)
	}
	// local: this replica's share of 4/h among 2 replicas is a burst of 2.
	if n, st := count("/local"); n != 2 || st[429] != 4 {
		t.Errorf("local: %v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if fallbacks["deny"] != 6 || fallbacks["allow"] != 6 || fallbacks["local"] != 6 {
		t.Errorf("fallbacks %v", fallbacks)
	}
}
