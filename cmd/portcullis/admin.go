package main

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyCheck is one readiness condition (config loaded, JWKS fetched, ...). check
// returns nil when ready.
type readyCheck struct {
	name  string
	check func() error
}

// admin serves health probes and metrics. Probes never pass through enforcement.
type admin struct {
	registry *prometheus.Registry
	// checks is replaced whole on every config swap.
	checks atomic.Pointer[[]readyCheck]
	// pprof serves /debug/pprof/ (opt-in: profiles reveal internals and cost CPU).
	pprof bool
}

func (a *admin) setChecks(c []readyCheck) { a.checks.Store(&c) }

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	if a.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

type readyReport struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// readyz answers 200 when every check passes, else 503; the body lists each check as
// "ok" or its error, so an operator sees why (e.g. "jwks corp: last fetch failed").
func (a *admin) readyz(w http.ResponseWriter, _ *http.Request) {
	rep := readyReport{Ready: true, Checks: map[string]string{}}
	p := a.checks.Load()
	if p == nil {
		rep.Ready = false
		rep.Checks["config"] = "not loaded"
	} else {
		for _, c := range *p {
			if err := c.check(); err != nil {
				rep.Ready = false
				rep.Checks[c.name] = err.Error()
			} else {
				rep.Checks[c.name] = "ok"
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
