package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns every sample of reg as "name{label=value,...}" -> value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					k += ","
				}
				k += l.GetName() + "=" + l.GetValue()
			}
			k += "}"
			switch {
			case m.GetCounter() != nil:
				out[k] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[k] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestStateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewStateMetrics(reg)
	if got := gathered(t, reg)["portcullis_store_available{}"]; got != 1 {
		t.Errorf("available at start = %v", got)
	}
	m.StoreError("take")
	m.StoreError("take")
	m.StoreFallback("take", "local")
	m.StoreAvailable(false)
	m.RateLimited("per-ip", false)
	m.RateLimited("per-ip", true)
	m.RateLimited("per-ip", true)
	m.BruteForceLevel("ip", "high")
	m.BruteForceBan("ip")
	got := gathered(t, reg)
	for k, v := range map[string]float64{
		"portcullis_store_errors_total{op=take}":                     2,
		"portcullis_store_fallbacks_total{op=take,policy=local}":     1,
		"portcullis_store_available{}":                               0,
		"portcullis_ratelimit_hits_total{limit=per-ip,shadow=false}": 1,
		"portcullis_ratelimit_hits_total{limit=per-ip,shadow=true}":  2,
		"portcullis_bruteforce_level_total{kind=ip,level=high}":      1,
		"portcullis_bruteforce_bans_total{kind=ip}":                  1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// Resolved counters are cached: counting an existing series does not allocate.
func TestStateMetricsNoAlloc(t *testing.T) {
	m := NewStateMetrics(prometheus.NewRegistry())
	m.RateLimited("l", false)
	if n := testing.AllocsPerRun(100, func() { m.RateLimited("l", false) }); n != 0 {
		t.Errorf("%v allocations per hit", n)
	}
}
