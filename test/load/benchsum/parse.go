package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// loadRun is one line of loadgen output: "<pair>/<role> <rps> req/s p50 <d> p99 <d>
// n=<n> errors=<e>".
type loadRun struct {
	pair, role string
	rps        float64
	p50, p99   time.Duration
	n, errors  int64
}

// parseLoadLine parses one loadgen result line; ok is false for any other line.
func parseLoadLine(line string) (loadRun, bool) {
	f := strings.Fields(line)
	if len(f) != 9 || f[2] != "req/s" || f[3] != "p50" || f[5] != "p99" {
		return loadRun{}, false
	}
	pair, role, ok := strings.Cut(f[0], "/")
	if !ok {
		return loadRun{}, false
	}
	r := loadRun{pair: pair, role: role}
	var err error
	if r.rps, err = strconv.ParseFloat(f[1], 64); err != nil {
		return loadRun{}, false
	}
	if r.p50, err = time.ParseDuration(f[4]); err != nil {
		return loadRun{}, false
	}
	if r.p99, err = time.ParseDuration(f[6]); err != nil {
		return loadRun{}, false
	}
	n, ok1 := strings.CutPrefix(f[7], "n=")
	e, ok2 := strings.CutPrefix(f[8], "errors=")
	if !ok1 || !ok2 {
		return loadRun{}, false
	}
	if r.n, err = strconv.ParseInt(n, 10, 64); err != nil {
		return loadRun{}, false
	}
	if r.errors, err = strconv.ParseInt(e, 10, 64); err != nil {
		return loadRun{}, false
	}
	return r, true
}

// maxErrorShare is the share of failed calls above which a run does not count.
const maxErrorShare = 0.001

// usable reports whether a run counts: it completed calls, and failures are rare.
func (r loadRun) usable() bool {
	return r.n > 0 && float64(r.errors) <= maxErrorShare*float64(r.n+r.errors)
}

// readLoad reads every result line of r.
func readLoad(r io.Reader) ([]loadRun, error) {
	var runs []loadRun
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if run, ok := parseLoadLine(sc.Text()); ok {
			runs = append(runs, run)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read load results: %w", err)
	}
	return runs, nil
}

// goBench is the median of one Go benchmark's repetitions.
type goBench struct {
	nsPerOp, allocs float64
	count           int
	metrics         map[string]float64 // custom units (b.ReportMetric), medians
}

// readGoBench reads `go test -bench -benchmem` output and returns the medians of
// each benchmark, keyed by "<package path>.<name without -GOMAXPROCS>".
func readGoBench(r io.Reader) (map[string]goBench, error) {
	ns := map[string][]float64{}
	allocs := map[string][]float64{}
	metrics := map[string]map[string][]float64{}
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		name, nsOp, al, ok := parseBenchLine(line)
		if !ok {
			continue
		}
		key := pkg + "." + name
		ns[key] = append(ns[key], nsOp)
		if al >= 0 {
			allocs[key] = append(allocs[key], al)
		}
		for unit, v := range benchMetrics(line) {
			if metrics[key] == nil {
				metrics[key] = map[string][]float64{}
			}
			metrics[key][unit] = append(metrics[key][unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go benchmarks: %w", err)
	}
	out := make(map[string]goBench, len(ns))
	for k, v := range ns {
		b := goBench{nsPerOp: median(v), allocs: -1, count: len(v)}
		if a := allocs[k]; len(a) > 0 {
			b.allocs = median(a)
		}
		for unit, vs := range metrics[k] {
			if b.metrics == nil {
				b.metrics = map[string]float64{}
			}
			b.metrics[unit] = median(vs)
		}
		out[k] = b
	}
	return out, nil
}

// parseBenchLine parses "BenchmarkX/sub-2  N  123 ns/op ... 4 allocs/op"; allocs is
// -1 when not reported.
func parseBenchLine(line string) (name string, nsOp, allocs float64, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", 0, 0, false
	}
	name = f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	allocs = -1
	found := false
	for i := 2; i+1 < len(f); i++ {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		switch f[i+1] {
		case "ns/op":
			nsOp, found = v, true
		case "allocs/op":
			allocs = v
		}
	}
	return name, nsOp, allocs, found
}

// benchMetrics returns the custom metrics of a benchmark line (value-unit pairs other
// than ns/op, B/op, allocs/op and MB/s).
func benchMetrics(line string) map[string]float64 {
	f := strings.Fields(line)
	var m map[string]float64
	for i := 2; i+1 < len(f); i++ {
		switch f[i+1] {
		case "ns/op", "B/op", "allocs/op", "MB/s":
			continue
		}
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !strings.ContainsAny(f[i+1], "/-") {
			continue
		}
		if m == nil {
			m = map[string]float64{}
		}
		m[f[i+1]] = v
		i++
	}
	return m
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDuration(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}
