package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseLoadLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		want loadRun
	}{
		{"extauthz-jwt/target               5710 req/s  p50  9.992ms  p99 27.231ms  n=5749 errors=0", true,
			loadRun{pair: "extauthz-jwt", role: "target", rps: 5710, p50: 9992 * time.Microsecond, p99: 27231 * time.Microsecond, n: 5749}},
		{"rls-valkey/rate-floor 4336 req/s p50 234µs p99 1.869ms n=4400 errors=3", true,
			loadRun{pair: "rls-valkey", role: "rate-floor", rps: 4336, p50: 234 * time.Microsecond, p99: 1869 * time.Microsecond, n: 4400, errors: 3}},
		{"nolabelslash 5710 req/s p50 1ms p99 2ms n=1 errors=0", false, loadRun{}},
		{"a/b 5710 req/s p50 xyz p99 2ms n=1 errors=0", false, loadRun{}},
		{"a/b 5710 req/s p50 1ms p99 2ms n=1", false, loadRun{}},
		{"== load", false, loadRun{}},
	}
	for _, tt := range tests {
		got, ok := parseLoadLine(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseLoadLine(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestUsableRuns(t *testing.T) {
	tests := []struct {
		n, errors int64
		want      bool
	}{
		{10000, 0, true}, {10000, 10, true}, {10000, 11, false}, {0, 0, false},
	}
	for _, tt := range tests {
		if got := (loadRun{n: tt.n, errors: tt.errors}).usable(); got != tt.want {
			t.Errorf("n=%d errors=%d: usable %v, want %v", tt.n, tt.errors, got, tt.want)
		}
	}
}

const goOutput = `goos: linux
pkg: github.com/portcullis/portcullis/filters/jwt
BenchmarkVerify/ES256/stdlib-2         	   12361	     100000 ns/op	     576 B/op	      10 allocs/op
BenchmarkVerify/ES256/stdlib-2         	   12361	     90000 ns/op	     576 B/op	      10 allocs/op
BenchmarkVerify/ES256/stdlib-2         	   12361	     110000 ns/op	     576 B/op	      10 allocs/op
BenchmarkVerify/ES256/full-2           	   13227	     170000 ns/op	    2904 B/op	      53 allocs/op
BenchmarkVerify/ES256/full-2           	   13227	     150000 ns/op	    2904 B/op	      53 allocs/op
BenchmarkVerify/RS256/stdlib-2         	   12361	     50000 ns/op	     576 B/op	      10 allocs/op
BenchmarkVerify/RS256/full-2           	   13227	     90000 ns/op	    2904 B/op	      53 allocs/op
BenchmarkVerify/RS256/paired-2         	    3426	    169639 ns/op	     96114 full-ns/op	         1.309 full/stdlib	     73398 stdlib-ns/op
BenchmarkVerify/RS256/paired-2         	    3426	    169639 ns/op	     96114 full-ns/op	         1.400 full/stdlib	     73398 stdlib-ns/op
BenchmarkVerify/RS256/paired-2         	    3426	    169639 ns/op	     96114 full-ns/op	         1.200 full/stdlib	     73398 stdlib-ns/op
pkg: github.com/portcullis/portcullis/pkg/store
BenchmarkMemoryTake-2   	 7847011	       90.5 ns/op	       0 B/op	       0 allocs/op
pkg: github.com/portcullis/portcullis/pkg/httpsig
BenchmarkVerifyHMAC1KiB-2   	  293038	      3952 ns/op	 259.14 MB/s	    2512 B/op	      11 allocs/op
ok  	github.com/portcullis/portcullis/pkg/httpsig	2.1s
`

func TestReadGoBench(t *testing.T) {
	b, err := readGoBench(strings.NewReader(goOutput))
	if err != nil {
		t.Fatal(err)
	}
	std := b[module+"filters/jwt.BenchmarkVerify/ES256/stdlib"]
	full := b[module+"filters/jwt.BenchmarkVerify/ES256/full"]
	if std.nsPerOp != 100000 || std.count != 3 || full.nsPerOp != 160000 || full.allocs != 53 {
		t.Fatalf("medians: stdlib %+v full %+v", std, full)
	}
	if h := b[module+"pkg/httpsig.BenchmarkVerifyHMAC1KiB"]; h.nsPerOp != 3952 || h.allocs != 11 {
		t.Fatalf("with MB/s: %+v", h)
	}
	var out bytes.Buffer
	writeGoTable(&out, b)
	// RS256: the separate medians say 1.80x, the paired ratio (median 1.309) wins.
	for _, want := range []string{"1.60x (160000 / 100000 ns; 53 allocs)", "90.5 ns/op, 0 allocs/op", "PASS",
		"1.31x paired (96114 / 73398 ns); separately 1.80x"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// The ratio is of the medians of the usable runs; a failed target is FAILED, never PASS.
func TestLoadTable(t *testing.T) {
	runs := []loadRun{
		{pair: "extauthz-apikey", role: "floor", rps: 1000, n: 1000, p50: time.Millisecond},
		{pair: "extauthz-apikey", role: "target", rps: 800, n: 800, p50: time.Millisecond},
		{pair: "extauthz-apikey", role: "floor", rps: 900, n: 900},
		{pair: "extauthz-apikey", role: "target", rps: 700, n: 700},
		{pair: "extauthz-apikey", role: "floor", rps: 1100, n: 1100},
		{pair: "extauthz-apikey", role: "target", rps: 10, n: 10, errors: 500},
		{pair: "extauthz-jwt", role: "floor", rps: 1000, n: 1000},
		{pair: "extauthz-jwt", role: "target", rps: 0, n: 0, errors: 5},
	}
	var out bytes.Buffer
	writeLoadTable(&out, runs)
	lines := strings.Split(out.String(), "\n")
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.Contains(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line with %q in:\n%s", prefix, out.String())
		return ""
	}
	if l := find("API key (vs always-allow"); !strings.Contains(l, "75%") || !strings.Contains(l, "PASS") || !strings.Contains(l, "(1 not counted)") || !strings.Contains(l, "78-80%") {
		t.Errorf("apikey line: %s", l)
	}
	if l := find("ES256 JWT"); !strings.Contains(l, "FAILED") {
		t.Errorf("jwt line: %s", l)
	}
	if l := find("hmac-sha256"); !strings.Contains(l, "not run") {
		t.Errorf("hmac line: %s", l)
	}
}

// The machine halving its speed in the middle of a pair (measured on 2026-11-23: floor
// 10,509/s, then target 4,937/s, then both ~4,400/s) skews the ratio of medians (47%)
// but not the median of the per-pair ratios (94%), which decides.
func TestLoadTableSpeedStep(t *testing.T) {
	floors := []float64{11090, 10422, 10509, 4389, 4383}
	targets := []float64{10399, 10946, 4937, 3584, 4142}
	var runs []loadRun
	for i := range floors {
		runs = append(runs,
			loadRun{pair: "extauthz-hmac", role: "floor", rps: floors[i], n: 1000},
			loadRun{pair: "extauthz-hmac", role: "target", rps: targets[i], n: 1000})
	}
	var out bytes.Buffer
	writeLoadTable(&out, runs)
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "hmac-sha256") {
			if !strings.Contains(l, " 94% ") || !strings.Contains(l, " 47% ") || !strings.Contains(l, "PASS") || !strings.Contains(l, "47-105%") {
				t.Errorf("hmac line: %s", l)
			}
			return
		}
	}
	t.Fatalf("no hmac line in:\n%s", out.String())
}

// TestP50DeltaPaired: the latency added is the median of the per-run differences of
// the interleaved fixed-rate runs, not the difference of the two medians (which a
// machine whose speed changes between runs skews: here medians give +730 µs).
func TestP50DeltaPaired(t *testing.T) {
	floor := []time.Duration{300, 300, 300, 1000, 1000}
	target := []time.Duration{320, 330, 1030, 1030, 1030} // deltas 20, 30, 730, 30, 30
	runs := []loadRun{
		{pair: "proxy-apikey", role: "floor", rps: 9000, n: 1000},
		{pair: "proxy-apikey", role: "target", rps: 8800, n: 1000},
	}
	for i := range floor {
		runs = append(runs,
			loadRun{pair: "proxy-apikey", role: "rate-floor", rps: 2000, p50: floor[i] * time.Microsecond, n: 1000},
			loadRun{pair: "proxy-apikey", role: "rate-target", rps: 2000, p50: target[i] * time.Microsecond, n: 1000})
	}
	var out bytes.Buffer
	writeLoadTable(&out, runs)
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "p50 latency added") {
			if !strings.Contains(l, "p50 +30 µs") || !strings.Contains(l, "median of 5 runs, +20..+730 µs") || !strings.HasSuffix(l, "PASS") {
				t.Errorf("latency line: %s", l)
			}
			return
		}
	}
	t.Fatalf("no latency line in:\n%s", out.String())
}

func FuzzParseLoadLine(f *testing.F) {
	f.Add("extauthz-jwt/target 5710 req/s p50 9.992ms p99 27.231ms n=5749 errors=0")
	f.Add("a/b 1 req/s p50 1µs p99 -1h n=-1 errors=9999999999999999999999")
	f.Fuzz(func(t *testing.T, line string) {
		r, ok := parseLoadLine(line)
		if !ok {
			return
		}
		if f := strings.Fields(line); f[0] != r.pair+"/"+r.role || f[2] != "req/s" {
			t.Fatalf("%q parsed as %+v", line, r)
		}
	})
}

func FuzzParseBenchLine(f *testing.F) {
	f.Add("BenchmarkVerify/ES256/full-2 13227 111045 ns/op 2904 B/op 53 allocs/op")
	f.Add("BenchmarkX- 1 ns/op allocs/op")
	f.Fuzz(func(t *testing.T, line string) {
		name, _, _, ok := parseBenchLine(line)
		if ok && !strings.HasPrefix(name, "Benchmark") {
			t.Fatalf("name %q from %q", name, line)
		}
	})
}

// TestP50DeltaNoUsablePair: fixed-rate runs that all failed give no figure, not the
// closed-loop p50 difference (which only restates the throughput ratio).
func TestP50DeltaNoUsablePair(t *testing.T) {
	runs := []loadRun{
		{pair: "proxy-apikey", role: "floor", rps: 9000, p50: 7000 * time.Microsecond, n: 1000},
		{pair: "proxy-apikey", role: "target", rps: 8800, p50: 7010 * time.Microsecond, n: 1000},
		{pair: "proxy-apikey", role: "rate-floor", rps: 2000, n: 1000, errors: 500},
		{pair: "proxy-apikey", role: "rate-target", rps: 2000, n: 1000, errors: 500},
	}
	var out bytes.Buffer
	writeLoadTable(&out, runs)
	if !strings.Contains(out.String(), "no usable fixed-rate run pair") || strings.Contains(out.String(), "closed loop at saturation") {
		t.Fatalf("latency line:\n%s", out.String())
	}
}
