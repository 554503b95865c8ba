package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Metrics owns Portcullis's Prometheus registry and records decisions. It implements
// engine.Recorder. Label sets are bounded: route and stage names come from config,
// reasons are stable codes, so cardinality is fixed by the configuration.
type Metrics struct {
	Registry *prometheus.Registry

	decisions   *prometheus.CounterVec
	latency     prometheus.Histogram
	stageErrors *prometheus.CounterVec
	shadowed    *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	configInfo  *prometheus.GaugeVec

	// cache of resolved counters: WithLabelValues hashes and allocates per call.
	counters sync.Map // decisionKey -> prometheus.Counter
}

type decisionKey struct{ route, stage, outcome, reason string }

var _ engine.Recorder = (*Metrics)(nil)

// NewMetrics registers Portcullis's metrics (and the Go and process collectors) on a
// new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_decisions_total",
			Help: "Decisions by route, deciding stage, outcome (allow|deny) and reason.",
		}, []string{"route", "stage", "outcome", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "portcullis_decision_duration_seconds",
			Help:    "Time spent in Engine.Decide.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2},
		}),
		stageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_stage_errors_total",
			Help: "Technical stage failures (handled by the stage's on_error).",
		}, []string{"stage"}),
		shadowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_shadow_denials_total",
			Help: "Denials by stages in shadow mode (not enforced).",
		}, []string{"route"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_config_reloads_total",
			Help: "Configuration loads by result (success|failure).",
		}, []string{"result"}),
		configInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_config_info",
			Help: "The active configuration version (value 1).",
		}, []string{"version"}),
	}
	m.Registry.MustRegister(m.decisions, m.latency, m.stageErrors, m.shadowed, m.reloads, m.configInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decided records one decision.
func (m *Metrics) Decided(_ *engine.Request, d *engine.Decision) {
	k := decisionKey{route: d.Route, stage: d.DecidedBy, outcome: "deny", reason: d.Reason}
	if d.Allow {
		k.outcome = "allow"
	}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.decisions.WithLabelValues(k.route, k.stage, k.outcome, k.reason))
	}
	c.(prometheus.Counter).Inc()
	m.latency.Observe(d.Elapsed.Seconds())
	if len(d.Shadowed) > 0 {
		m.shadowed.WithLabelValues(d.Route).Add(float64(len(d.Shadowed)))
	}
}

// StageFailed counts a technical stage failure.
func (m *Metrics) StageFailed(_ *engine.Request, stage string, _ error) {
	m.stageErrors.WithLabelValues(stage).Inc()
}

// Reloaded counts a configuration load and, on success, publishes its version.
func (m *Metrics) Reloaded(version string, err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(version).Set(1)
}
