package main

import (
	"fmt"
	"io"
)

const module = "github.com/portcullis/portcullis/"

// goRow is one line of the Go benchmark table.
type goRow struct {
	issue, what, measured, goal, result string
}

// benchRef names a benchmark by package (relative to the module) and name.
func benchRef(benches map[string]goBench, pkg, name string) (goBench, bool) {
	b, ok := benches[module+pkg+"."+name]
	return b, ok
}

// allocRow checks an allocation count: at most limit (limit < 0: reported only).
func allocRow(benches map[string]goBench, issue, what, pkg, name string, limit float64, goal string) goRow {
	b, ok := benchRef(benches, pkg, name)
	if !ok || b.allocs < 0 {
		return goRow{issue, what, "not run", goal, "n/a"}
	}
	row := goRow{issue, what, fmt.Sprintf("%.0f allocs/op, %.0f ns/op", b.allocs, b.nsPerOp), goal, "-"}
	if limit >= 0 {
		row.result = passMiss(b.allocs <= limit)
	}
	return row
}

// jwtRows compare a cache miss (full verification) with the bare standard-library
// signature check, per algorithm: the paired benchmark's ratio (both alternated in one
// loop) when it ran, else the ratio of the separate full and stdlib medians.
func jwtRows(benches map[string]goBench) []goRow {
	var rows []goRow
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		what := "JWT cache miss / stdlib signature check, " + alg
		full, ok1 := benchRef(benches, "filters/jwt", "BenchmarkVerify/"+alg+"/full")
		std, ok2 := benchRef(benches, "filters/jwt", "BenchmarkVerify/"+alg+"/stdlib")
		if !ok1 || !ok2 || std.nsPerOp == 0 {
			rows = append(rows, goRow{"3", what, "not run", "<=1.60x", "n/a"})
			continue
		}
		r := full.nsPerOp / std.nsPerOp
		measured := fmt.Sprintf("%.2fx (%.0f / %.0f ns; %.0f allocs)", r, full.nsPerOp, std.nsPerOp, full.allocs)
		if p, ok := benchRef(benches, "filters/jwt", "BenchmarkVerify/"+alg+"/paired"); ok && p.metrics["full/stdlib"] > 0 {
			r = p.metrics["full/stdlib"]
			measured = fmt.Sprintf("%.2fx paired (%.0f / %.0f ns); separately %s", r,
				p.metrics["full-ns/op"], p.metrics["stdlib-ns/op"], measured)
		}
		rows = append(rows, goRow{"3", what, measured, "<=1.60x", passMiss(r <= 1.6)})
	}
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		if hit, ok := benchRef(benches, "filters/jwt", "BenchmarkVerify/"+alg+"/hit"); ok {
			rows = append(rows, goRow{"3", "JWT cache hit, " + alg,
				fmt.Sprintf("%.0f ns/op, %.0f allocs/op", hit.nsPerOp, hit.allocs), "-", "-"})
		}
	}
	return rows
}

func memoryTakeRow(benches map[string]goBench) goRow {
	const what = "memory limiter Take, existing key, 2 cores"
	const goal = "<100 ns, 0 allocs"
	b, ok := benchRef(benches, "pkg/store", "BenchmarkMemoryTake")
	if !ok {
		return goRow{"5", what, "not run", goal, "n/a"}
	}
	return goRow{"5", what, fmt.Sprintf("%.1f ns/op, %.0f allocs/op", b.nsPerOp, b.allocs), goal,
		passMiss(b.nsPerOp < 100 && b.allocs == 0)}
}

func goRows(benches map[string]goBench) []goRow {
	rows := []goRow{
		allocRow(benches, "2", "engine route match", "pkg/engine", "BenchmarkRouteLookup", 0, "0 allocs"),
		allocRow(benches, "2", "engine decision with an API key", "filters", "BenchmarkDecideAPIKey", 10, "<=10 allocs"),
	}
	rows = append(rows, jwtRows(benches)...)
	rows = append(rows,
		allocRow(benches, "4", "RFC 9421 signature base, 1 KiB request", "pkg/httpsig", "BenchmarkSignatureBase", 19, "<20 allocs"),
		allocRow(benches, "4", "RFC 9421 hmac-sha256 verify, 1 KiB (base+digest+MAC)", "pkg/httpsig", "BenchmarkVerifyHMAC1KiB", 19, "<20 allocs"),
		allocRow(benches, "4", "hmac stage Authenticate, 1 KiB, replay on", "filters/hmac", "BenchmarkAuthenticateRFC9421HMAC1KiBWithReplay", -1, "-"),
		memoryTakeRow(benches),
		allocRow(benches, "5", "RLS ShouldRateLimit, gRPC client+server in process, memory", "pkg/rls", "BenchmarkShouldRateLimitMemory", -1, "-"),
		allocRow(benches, "5", "ratelimit stage Check, memory", "filters/ratelimit", "BenchmarkCheck", -1, "-"),
	)
	return rows
}

func writeGoTable(w io.Writer, benches map[string]goBench) {
	fmt.Fprintln(w, "== Go benchmarks: medians of the repetitions")
	if len(benches) == 0 {
		fmt.Fprintln(w, "not run")
		return
	}
	fmt.Fprintf(w, "%-5s %-56s %-44s %-18s %s\n", "issue", "benchmark", "measured", "goal", "result")
	for _, r := range goRows(benches) {
		fmt.Fprintf(w, "%-5s %-56s %-44s %-18s %s\n", r.issue, r.what, r.measured, r.goal, r.result)
	}
}
