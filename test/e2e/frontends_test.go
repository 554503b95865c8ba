package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The forward-auth listener answers from the same engine: 200 with the identity
// headers for nginx/Traefik/Caddy to copy, or the deny with its JSON body.
func TestForwardAuthListener(t *testing.T) {
	up := newRecorder(t)
	s := startSidecar(t, repoPath("examples", "quickstart", "portcullis.yaml"), up.srv.URL)
	key := demoKey(t)
	resp, body := get(t, "http://"+s.fwd+"/api/hello", map[string]string{"X-API-Key": key, "X-Portcullis-Subject": "admin"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Portcullis-Subject") != "demo" || resp.Header.Get("X-Portcullis-Auth") != "apikey" {
		t.Fatalf("allow: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = get(t, "http://"+s.fwd+"/api/hello", nil)
	if resp.StatusCode != 401 || !strings.Contains(body, `"reason":"auth.missing"`) {
		t.Fatalf("deny: %d %s", resp.StatusCode, body)
	}
	// Without trusted proxies configured, X-Forwarded-Uri from the caller is not
	// believed: the public /health route cannot be borrowed to pass /api/.
	resp, _ = get(t, "http://"+s.fwd+"/api/hello", map[string]string{"X-Forwarded-Uri": "/health", "X-Forwarded-Method": "GET"})
	if resp.StatusCode != 401 {
		t.Fatalf("untrusted X-Forwarded-Uri was believed: %d", resp.StatusCode)
	}
	up.none(t)
}

// SIGTERM drains: a request in flight when the signal arrives completes, then the
// process exits 0.
func TestGracefulDrainOnSIGTERM(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	t.Cleanup(slow.Close)
	s := startSidecar(t, repoPath("examples", "quickstart", "portcullis.yaml"), slow.URL)
	key := demoKey(t)
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.proxy+"/api/slow", nil)
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	select { // the request is now waiting in the upstream
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	select {
	case r := <-done:
		if r.err != nil || r.status != 200 || r.body != "finished" {
			t.Fatalf("in-flight request during drain: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM:\n%s", code, s.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sidecar did not exit after draining")
	}
}
