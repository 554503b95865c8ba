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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
// PORTCULLIS_* overrides), and waits until /readyz answers 200.
func startSidecar(t *testing.T, config, upstream string, extraArgs ...string) *sidecar {
	t.Helper()
	s := &sidecar{proxy: freeAddr(t), grpc: freeAddr(t), admin: freeAddr(t), fwd: freeAddr(t),
		logs: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"serve", "--config", config}, extraArgs...)
	s.cmd = exec.Command(binary, args...)
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
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("sidecar exited early:\n%s", s.logs)
		default:
		}
		resp, err := http.Get("http://" + s.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sidecar not ready:\n%s", s.logs)
	return nil
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
