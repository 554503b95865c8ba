package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// loadTarget is one load target: runs labelled "<pair>/target" against the runs
// labelled "<pair>/floor" alternated with them.
type loadTarget struct {
	issue, pair, what string
	min               float64       // target/floor at least this (0: reported only)
	maxP50Delta       time.Duration // target p50 - floor p50 at most this (0: none)
}

var loadTargets = []loadTarget{
	{"2", "extauthz-apikey", "ext_authz Check, API key (vs always-allow ext_authz)", 0.75, 0},
	{"-", "extauthz-apikey-nolog", "same, log.decisions: none (no target)", 0, 0},
	{"2", "proxy-apikey", "proxy small GET, API key (vs bare ReverseProxy)", 0.85, 50 * time.Microsecond},
	{"3", "extauthz-jwt", "ext_authz Check, ES256 JWT, cache hit", 0.70, 0},
	{"4", "extauthz-hmac", "ext_authz Check, hmac-sha256 RFC 9421, 1 KiB raw_body", 0.70, 0},
	{"5", "rls-memory", "RLS ShouldRateLimit, 1 descriptor, memory (vs always-allow RLS)", 0.70, 0},
	{"5", "rls-valkey", "RLS ShouldRateLimit, 1 descriptor, Valkey (vs always-allow RLS)", 0.70, 0},
	{"5", "extauthz-ratelimit-valkey", "ext_authz Check, ratelimit stage, Valkey", 0.70, 0},
	{"-", "extauthz-ratelimit-memory", "ext_authz Check, ratelimit stage, memory (no target)", 0, 0},
}

// stats are the medians of one pair/role's usable runs.
type stats struct {
	rps            float64
	p50, p99       time.Duration
	usable, unused int
}

func summarize(runs []loadRun, pair, role string) stats {
	var st stats
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range runs {
		if r.pair != pair || r.role != role {
			continue
		}
		if !r.usable() {
			st.unused++
			continue
		}
		rps = append(rps, r.rps)
		p50 = append(p50, r.p50)
		p99 = append(p99, r.p99)
	}
	st.usable = len(rps)
	if st.usable > 0 {
		st.rps, st.p50, st.p99 = median(rps), medianDuration(p50), medianDuration(p99)
	}
	return st
}

// writeLatencyAdded prints t's p50 latency added over its floor. It is read from the
// fixed-rate runs when there are any: in a closed loop at saturation p50 is
// concurrency / throughput, so it restates the throughput ratio instead of measuring
// per-request latency, and it is used only when no fixed-rate run was made. Each
// fixed-rate run alternates its requests between floor and target, so the delta is
// taken per run and the median of the runs' deltas decides.
func writeLatencyAdded(w io.Writer, t loadTarget, runs []loadRun, fl, tg stats) {
	line := func(d time.Duration, how string) {
		fmt.Fprintf(w, "%-5s %-64s p50 %+.0f µs over the floor (%s; goal <= +%s µs): %s\n", t.issue,
			"  same, p50 latency added", float64(d)/float64(time.Microsecond), how, us(t.maxP50Delta), passMiss(d <= t.maxP50Delta))
	}
	ds := runDeltas(runs, t.pair)
	rf, rt := summarize(runs, t.pair, "rate-floor"), summarize(runs, t.pair, "rate-target")
	switch {
	case len(ds) > 0:
		line(medianDuration(ds), fmt.Sprintf("fixed rate, half capacity in all, a quarter each, requests alternated; median of %d runs, %+.0f..%+.0f µs",
			len(ds), float64(ds[0])/float64(time.Microsecond), float64(ds[len(ds)-1])/float64(time.Microsecond)))
	case rf.usable+rf.unused+rt.usable+rt.unused > 0:
		fmt.Fprintf(w, "%-5s %-64s no usable fixed-rate run pair (goal <= +%s µs): FAILED\n", t.issue,
			"  same, p50 latency added", us(t.maxP50Delta))
	case fl.usable > 0 && tg.usable > 0:
		line(tg.p50-fl.p50, "closed loop at saturation")
	}
}

// pairedRuns pairs the i-th run of pair in floorRole with its i-th run in targetRole
// (they alternate seconds apart, or come from one interleaved run) and returns the
// pairs where both are usable.
func pairedRuns(runs []loadRun, pair, floorRole, targetRole string) [][2]loadRun {
	var floors, targets []loadRun
	for _, r := range runs {
		switch {
		case r.pair != pair:
		case r.role == floorRole:
			floors = append(floors, r)
		case r.role == targetRole:
			targets = append(targets, r)
		}
	}
	var out [][2]loadRun
	for i := range min(len(floors), len(targets)) {
		if floors[i].usable() && targets[i].usable() {
			out = append(out, [2]loadRun{floors[i], targets[i]})
		}
	}
	return out
}

// runRatios returns the target/floor throughput ratios of pair's closed-loop run
// pairs, sorted.
func runRatios(runs []loadRun, pair string) []float64 {
	var rs []float64
	for _, p := range pairedRuns(runs, pair, "floor", "target") {
		if p[0].rps != 0 {
			rs = append(rs, p[1].rps/p[0].rps)
		}
	}
	slices.Sort(rs)
	return rs
}

// runDeltas returns the p50 differences, target minus floor, of pair's fixed-rate run
// pairs (one interleaved loadgen run prints both), sorted.
func runDeltas(runs []loadRun, pair string) []time.Duration {
	var ds []time.Duration
	for _, p := range pairedRuns(runs, pair, "rate-floor", "rate-target") {
		ds = append(ds, p[1].p50-p[0].p50)
	}
	slices.Sort(ds)
	return ds
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func writeSummary(w io.Writer, meta string, runs []loadRun, benches map[string]goBench, failures string) {
	fmt.Fprintln(w, "== Portcullis performance targets (issues 2-5), make bench")
	if meta != "" {
		fmt.Fprint(w, meta)
	}
	fmt.Fprintln(w)
	writeLoadTable(w, runs)
	writeRateTable(w, runs)
	fmt.Fprintln(w)
	writeGoTable(w, benches)
	if strings.TrimSpace(failures) != "" {
		fmt.Fprintln(w, "\n== Runs that failed (not counted)")
		fmt.Fprint(w, failures)
	}
}

func writeLoadTable(w io.Writer, runs []loadRun) {
	fmt.Fprintln(w, "== Load: floor and target alternated in the same run; floor/s, target/s and the latencies are")
	fmt.Fprintln(w, "   medians of the usable runs; ratio = the median of the per-pair ratios (each floor run and the")
	fmt.Fprintln(w, "   target run right after it), which a change of machine speed between pairs does not skew;")
	fmt.Fprintln(w, "   med/med = median target / median floor, which it can; the range shows the noise")
	fmt.Fprintf(w, "%-5s %-64s %9s %9s %6s %7s %6s %-6s %13s %13s %s\n",
		"issue", "target", "floor/s", "target/s", "ratio", "med/med", "goal", "result", "p50 fl/tg µs", "p99 fl/tg µs", "runs, per-run ratios")
	for _, t := range loadTargets {
		fl, tg := summarize(runs, t.pair, "floor"), summarize(runs, t.pair, "target")
		if fl.usable+fl.unused+tg.usable+tg.unused == 0 {
			fmt.Fprintf(w, "%-5s %-64s not run\n", t.issue, t.what)
			continue
		}
		ratio, medmed, result, goal := "-", "-", "n/a", "-"
		if t.min > 0 {
			goal = fmt.Sprintf(">=%.0f%%", 100*t.min)
		}
		rs := runRatios(runs, t.pair)
		if fl.usable > 0 && tg.usable > 0 {
			medmed = fmt.Sprintf("%.0f%%", 100*tg.rps/fl.rps)
		}
		if len(rs) > 0 {
			r := median(rs)
			ratio = fmt.Sprintf("%.0f%%", 100*r)
			if t.min > 0 {
				result = passMiss(r >= t.min)
			}
		} else if t.min > 0 {
			result = "FAILED"
		}
		fmt.Fprintf(w, "%-5s %-64s %9.0f %9.0f %6s %7s %6s %-6s %13s %13s %d+%d",
			t.issue, t.what, fl.rps, tg.rps, ratio, medmed, goal, result,
			us(fl.p50)+"/"+us(tg.p50), us(fl.p99)+"/"+us(tg.p99), fl.usable, tg.usable)
		if len(rs) > 0 {
			fmt.Fprintf(w, " %.0f-%.0f%%", 100*rs[0], 100*rs[len(rs)-1])
		}
		if fl.unused+tg.unused > 0 {
			fmt.Fprintf(w, " (%d not counted)", fl.unused+tg.unused)
		}
		fmt.Fprintln(w)
		if t.maxP50Delta > 0 {
			writeLatencyAdded(w, t, runs, fl, tg)
		}
	}
}

// writeRateTable reports the fixed-rate runs ("rate-target" and "rate-floor" roles).
func writeRateTable(w io.Writer, runs []loadRun) {
	header := false
	for _, t := range loadTargets {
		for _, role := range []string{"rate-floor", "rate-target"} {
			st := summarize(runs, t.pair, role)
			if st.usable+st.unused == 0 {
				continue
			}
			if !header {
				fmt.Fprintln(w, "\n== Fixed rate at half the measured capacity (latency from each request's due time); the proxy")
				fmt.Fprintln(w, "   runs alternate floor and target requests in one run (half capacity in all, a quarter each)")
				header = true
			}
			fmt.Fprintf(w, "%-5s %-64s %-11s %7.0f req/s  p50 %6s µs  p99 %6s µs  runs %d\n",
				t.issue, t.what, role, st.rps, us(st.p50), us(st.p99), st.usable)
		}
	}
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
