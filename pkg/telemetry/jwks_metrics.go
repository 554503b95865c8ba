package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// KeyFetchMetrics counts remote key-set (JWKS) fetches per provider.
type KeyFetchMetrics struct {
	fetches *prometheus.CounterVec
	keys    *prometheus.GaugeVec
}

// NewKeyFetchMetrics registers portcullis_jwks_fetches_total{provider,outcome} and
// portcullis_jwks_keys{provider} on reg.
func NewKeyFetchMetrics(reg prometheus.Registerer) *KeyFetchMetrics {
	m := &KeyFetchMetrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_jwks_fetches_total",
			Help: "Remote JWKS fetches by provider and outcome (success|failure); on failure the last good key set stays in use.",
		}, []string{"provider", "outcome"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_jwks_keys",
			Help: "Keys in the key set in use, by provider.",
		}, []string{"provider"}),
	}
	reg.MustRegister(m.fetches, m.keys)
	return m
}

// Fetched records one fetch attempt and the size of the key set in use after it.
func (m *KeyFetchMetrics) Fetched(provider string, keys int, err error) {
	outcome := "success"
	if err != nil {
		outcome = "failure"
	}
	m.fetches.WithLabelValues(provider, outcome).Inc()
	m.keys.WithLabelValues(provider).Set(float64(keys))
}
