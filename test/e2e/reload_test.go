package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// writeAtomic replaces path the way a ConfigMap update does: write aside, then rename.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func metric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`)
	m := re.FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// Config reloads under load: valid versions are swapped in atomically, invalid ones are
// rejected and counted, and no request fails or sees a half-applied configuration.
func TestReloadUnderLoad(t *testing.T) {
	up := newRecorder(t)
	base, err := os.ReadFile(repoPath("examples", "quickstart", "portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	writeAtomic(t, path, string(base))
	s := startSidecar(t, path, up.srv.URL, "--watch-interval", "50ms")
	key := demoKey(t)
	go func() { // drain the recorder so it never blocks
		for range up.last {
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var ok, bad atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000 && ctx.Err() == nil; i++ {
				req, _ := http.NewRequest("GET", "http://"+s.proxy+"/api/hello", nil)
				req.Header.Set("X-API-Key", key)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						bad.Add(1)
						firstBad.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("status %d", resp.StatusCode))
				}
			}
		}()
	}

	valid, invalid := 0, 0
	for i := 0; ctx.Err() == nil && i < 30; i++ {
		var doc string
		switch i % 3 {
		case 0, 1: // a valid change: one more route each time
			doc = strings.Replace(string(base), "routes:\n", fmt.Sprintf("routes:\n  - {name: extra%d, match: {path: {exact: /extra%d}}, policy: public}\n", i, i), 1)
			valid++
		case 2: // an invalid one: unknown policy
			doc = strings.Replace(string(base), "policy: api\n", "policy: apii\n", 1)
			invalid++
		}
		writeAtomic(t, path, doc)
		time.Sleep(120 * time.Millisecond)
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", bad.Load(), ok.Load()+bad.Load(), firstBad.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests ran", ok.Load())
	}
	succ := metric(t, s.admin, `portcullis_config_reloads_total{result="success"}`)
	fail := metric(t, s.admin, `portcullis_config_reloads_total{result="failure"}`)
	// The initial load counts as one success; polls may coalesce quick writes.
	if succ < 3 || fail < 1 {
		t.Fatalf("reloads: success=%v failure=%v (wrote %d valid, %d invalid)", succ, fail, valid, invalid)
	}
	waitLog(t, s, `"event":"config_rejected"`)
	t.Logf("%d requests, all 200; reloads success=%v failure=%v", ok.Load(), succ, fail)
}

// SIGHUP reloads at once, even with polling off; an invalid document keeps the running
// configuration.
func TestReloadOnSIGHUP(t *testing.T) {
	up := newRecorder(t)
	base, err := os.ReadFile(repoPath("examples", "quickstart", "portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	writeAtomic(t, path, string(base))
	s := startSidecar(t, path, up.srv.URL, "--watch-interval", "0")

	status := func() int {
		resp, err := http.Get("http://" + s.proxy + "/open")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != 404 {
		t.Fatalf("before: %d", got)
	}
	writeAtomic(t, path, strings.Replace(string(base), "routes:\n", "routes:\n  - {name: open, match: {path: {exact: /open}}, policy: public}\n", 1))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for status() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not apply the new route:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	writeAtomic(t, path, "routes: [oops")
	_ = s.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if got := status(); got != 200 {
		t.Fatalf("an invalid document replaced the running one: %d", got)
	}
	waitLog(t, s, "config reload rejected")
}

// waitLog waits for a log line containing want (logs are flushed every second).
func waitLog(t *testing.T, s *sidecar, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log line %q not found in:\n%s", want, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
