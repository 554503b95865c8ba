// Command benchsum turns the raw output of test/load/bench.sh (loadgen result lines,
// `go test -bench` output, failure notes, machine notes) into the summary of every
// performance target of issues 2-5: the measured median, the floor measured in the
// same run, the ratio and the target, PASS or MISS.
//
// With -capacity PAIR/ROLE it prints only the median req/s of those runs (bench.sh
// uses it to pick the fixed rate at half the measured capacity).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	loadPath := flag.String("load", "", "loadgen result lines")
	goPath := flag.String("gobench", "", "go test -bench output")
	failPath := flag.String("failures", "", "runs that failed, one 'label<TAB>reason' a line")
	metaPath := flag.String("meta", "", "machine and run notes, printed first")
	capacity := flag.String("capacity", "", "print the median req/s of PAIR/ROLE and exit")
	flag.Parse()
	if err := run(os.Stdout, *loadPath, *goPath, *failPath, *metaPath, *capacity); err != nil {
		fmt.Fprintln(os.Stderr, "benchsum:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, loadPath, goPath, failPath, metaPath, capacity string) error {
	runs, err := readFileWith(loadPath, readLoad)
	if err != nil {
		return err
	}
	if capacity != "" {
		pair, role, _ := strings.Cut(capacity, "/")
		st := summarize(runs, pair, role)
		if st.usable == 0 {
			return fmt.Errorf("no usable run of %s", capacity)
		}
		fmt.Fprintf(w, "%.0f\n", st.rps)
		return nil
	}
	benches, err := readFileWith(goPath, readGoBench)
	if err != nil {
		return err
	}
	meta, err := readText(metaPath)
	if err != nil {
		return err
	}
	failures, err := readText(failPath)
	if err != nil {
		return err
	}
	writeSummary(w, meta, runs, benches, failures)
	return nil
}

// readFileWith parses the file at path with parse; an empty path or a missing file
// gives the zero value (that part of the bench did not run).
func readFileWith[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	if path == "" {
		return zero, nil
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return zero, nil
	}
	if err != nil {
		return zero, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	return parse(f)
}

func readText(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(b), nil
}
