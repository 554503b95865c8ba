package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// StateMetrics records the shared state's health and what rate limits and brute-force
// protection do. Label values come from configuration (limit names, domains) or small
// fixed sets (operations, policies, levels), so cardinality is bounded.
type StateMetrics struct {
	storeErrors *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	available   prometheus.Gauge
	limited     *prometheus.CounterVec
	levels      *prometheus.CounterVec
	bans        *prometheus.CounterVec

	// resolved counters: WithLabelValues hashes and allocates per call.
	cache sync.Map // stateKey -> prometheus.Counter
}

type stateKey struct {
	vec  *prometheus.CounterVec
	a, b string
}

// NewStateMetrics registers the state metrics on reg.
func NewStateMetrics(reg prometheus.Registerer) *StateMetrics {
	m := &StateMetrics{
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_store_errors_total",
			Help: "Failed or timed-out calls to the shared store, by operation.",
		}, []string{"op"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_store_fallbacks_total",
			Help: "Decisions made without the shared store, by operation and failure policy (local|allow|deny).",
		}, []string{"op", "policy"}),
		available: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_store_available",
			Help: "1 while the shared store is believed healthy, 0 while calls skip it.",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_ratelimit_hits_total",
			Help: "Requests (ratelimit stages) and descriptors (RLS) over a rate limit, by limit name and shadow mode.",
		}, []string{"limit", "shadow"}),
		levels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_bruteforce_level_total",
			Help: "Brute-force threat level changes, by what is counted (ip|credential) and the level reached.",
		}, []string{"kind", "level"}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_bruteforce_bans_total",
			Help: "Brute-force bans set, by what is banned (ip|credential).",
		}, []string{"kind"}),
	}
	m.available.Set(1)
	reg.MustRegister(m.storeErrors, m.fallbacks, m.available, m.limited, m.levels, m.bans)
	return m
}

func (m *StateMetrics) counter(vec *prometheus.CounterVec, a, b string) prometheus.Counter {
	k := stateKey{vec, a, b}
	if c, ok := m.cache.Load(k); ok {
		return c.(prometheus.Counter)
	}
	var c prometheus.Counter
	if b == "" {
		c = vec.WithLabelValues(a)
	} else {
		c = vec.WithLabelValues(a, b)
	}
	got, _ := m.cache.LoadOrStore(k, c)
	return got.(prometheus.Counter)
}

// StoreError counts a failed store call.
func (m *StateMetrics) StoreError(op string) { m.counter(m.storeErrors, op, "").Inc() }

// StoreFallback counts a decision made without the store under policy.
func (m *StateMetrics) StoreFallback(op, policy string) { m.counter(m.fallbacks, op, policy).Inc() }

// StoreAvailable publishes whether the store is believed healthy.
func (m *StateMetrics) StoreAvailable(ok bool) {
	if ok {
		m.available.Set(1)
		return
	}
	m.available.Set(0)
}

// RateLimited counts a request over limit.
func (m *StateMetrics) RateLimited(limit string, shadow bool) {
	s := "false"
	if shadow {
		s = "true"
	}
	m.counter(m.limited, limit, s).Inc()
}

// BruteForceLevel counts a threat level reached by kind ("ip" or "credential").
func (m *StateMetrics) BruteForceLevel(kind, level string) { m.counter(m.levels, kind, level).Inc() }

// BruteForceBan counts a ban of kind.
func (m *StateMetrics) BruteForceBan(kind string) { m.counter(m.bans, kind, "").Inc() }
