// Package e2e builds the portcullis binary and drives it as a user would: real
// processes, real listeners on loopback, real HTTP and gRPC clients.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portcullis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "portcullis")
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	cmd := exec.Command("go", "build", "-tags", "vtprotobuf", "-o", binary, "./cmd/portcullis")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoPath returns a path inside the repository.
func repoPath(parts ...string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(here), "..", ".."}, parts...)...)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs returns n distinct free loopback addresses. Their listeners stay open until
// all n are chosen: closed one by one, the kernel may hand the same port out twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// syncBuffer is a bytes.Buffer safe for a writer process and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sidecar is a running `portcullis serve`.
type sidecar struct {
	cmd                     *exec.Cmd
	proxy, grpc, admin, fwd string
	logs                    *syncBuffer
	done                    chan struct{}
}

// startSidecar runs serve with config and fresh loopback listeners (set through the
// PORTCULLIS_* overrides), and waits until /readyz answers 200. A port taken by another
// process between being chosen and being bound (tests run in parallel) starts it again
// on new ones.
func startSidecar(t *testing.T, config, upstream string, extraArgs ...string) *sidecar {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := launch(t, config, upstream, extraArgs...)
		if s.waitReady(t, attempt < 3) {
			return s
		}
		t.Logf("sidecar lost a port to another process, starting again:\n%s", s.logs)
	}
}

// waitReady waits until /readyz answers 200 and returns true. It fails the test if
// the sidecar exits or is not ready in time, except that it returns false when
// mayRetry and the sidecar exited because a port was taken.
func (s *sidecar) waitReady(t *testing.T, mayRetry bool) bool {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			if mayRetry && strings.Contains(s.logs.String(), "address already in use") {
				return false
			}
			t.Fatalf("sidecar exited early:\n%s", s.logs)
		default:
		}
		if resp, err := http.Get("http://" + s.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sidecar not ready:\n%s", s.logs)
	return false
}

// launch starts serve on fresh loopback listeners without waiting for readiness.
func launch(t *testing.T, config, upstream string, extraArgs ...string) *sidecar {
	t.Helper()
	addrs := freeAddrs(t, 4)
	s := &sidecar{proxy: addrs[0], grpc: addrs[1], admin: addrs[2], fwd: addrs[3],
		logs: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binary, append([]string{"serve", "--config", config}, extraArgs...)...)
	s.cmd.Env = append(os.Environ(),
		"PORTCULLIS_LISTENERS_PROXY="+s.proxy, "PORTCULLIS_LISTENERS_GRPC="+s.grpc,
		"PORTCULLIS_LISTENERS_ADMIN="+s.admin, "PORTCULLIS_LISTENERS_FORWARD_AUTH="+s.fwd,
		"PORTCULLIS_UPSTREAM_URL="+upstream)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *sidecar) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("sidecar did not stop on SIGINT")
	}
}

// runCLI runs the binary with args and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func demoKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(repoPath("examples", "quickstart", "demo-key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
