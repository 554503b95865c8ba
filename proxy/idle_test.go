package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that stops sending its request body is answered 408 body.timeout after the
// stream idle timeout, whether the body streams to the upstream or is read for a stage
// first (Slowloris on the body; ReadHeaderTimeout covers only the head).
func TestStalledBodyTimesOut(t *testing.T) {
	for _, path := range []string{"/public/upload", "/body/upload"} {
		t.Run(path, func(t *testing.T) {
			h := startProxy(t, func(o *Options) { o.StreamIdleTimeout = 300 * time.Millisecond })
			c := h.dial(t)
			_, _ = io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer to a stalled body: %v", err)
			}
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "body.timeout") {
				t.Fatalf("stalled body: %d %s, want 408 body.timeout", res.StatusCode, b)
			}
		})
	}
}

// Deadlines are per read: a body that keeps arriving, more slowly in total than the
// timeout, passes whole.
func TestSlowBodyWithProgressPasses(t *testing.T) {
	h := startProxy(t, func(o *Options) { o.StreamIdleTimeout = time.Second })
	c := h.dial(t)
	_, _ = io.WriteString(c, "POST /public/upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 25\r\n\r\n")
	for i := 0; i < 5; i++ {
		time.Sleep(300 * time.Millisecond) // 1.5 s in all
		_, _ = io.WriteString(c, "abcde")
	}
	rs := readResponses(t, bufio.NewReader(c))
	if len(rs) != 1 || rs[0].StatusCode != http.StatusOK {
		t.Fatalf("slow body: %v", statuses(rs))
	}
	if got := h.up.only(t).Body; got != strings.Repeat("abcde", 5) {
		t.Fatalf("upstream body %q", got)
	}
}

// Once the body is in, the client may wait longer than the timeout for the answer:
// the read deadline must not outlive the body, or net/http's watch for the client going
// away (which reads the connection while the upstream works) would cancel the request.
func TestSlowUpstreamAfterBodyIsNotCut(t *testing.T) {
	up := newUpstream(t, func(u *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(900 * time.Millisecond)
			u.record(w, r)
		})
	})
	h := startProxyTo(t, up, up.URL, func(o *Options) { o.StreamIdleTimeout = 300 * time.Millisecond })
	res, err := http.Post("http://"+h.addr+"/public/x", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("slow upstream after a complete body: %d %s", res.StatusCode, b)
	}
}

// A client that stops reading its response no longer holds the exchange (and the
// upstream's connection) forever: the proxy's write fails after the timeout, and so does
// the upstream's.
func TestClientNotReadingIsCut(t *testing.T) {
	upstreamDone := make(chan error, 1)
	up := newUpstream(t, func(u *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 32<<10)
			for i := 0; i < 8192; i++ { // 256 MiB at most, far beyond any socket buffer
				if _, err := w.Write(chunk); err != nil {
					upstreamDone <- err
					return
				}
			}
			upstreamDone <- nil
		})
	})
	h := startProxyTo(t, up, up.URL, func(o *Options) { o.StreamIdleTimeout = 300 * time.Millisecond })
	c := h.dial(t)
	_, _ = io.WriteString(c, "GET /public/big HTTP/1.1\r\nHost: a\r\n\r\n")
	// The client reads nothing.
	select {
	case err := <-upstreamDone:
		if err == nil {
			t.Fatal("the upstream wrote 256 MiB to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a client that reads nothing holds the exchange")
	}
}

// An upstream that stops sending its response body mid-way ends the exchange after
// the timeout: the client's response is cut short instead of hanging.
func TestUpstreamStallMidBodyIsCut(t *testing.T) {
	up := newUpstream(t, func(u *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "0123456789")
			http.NewResponseController(w).Flush()
			select { // stalls; bounded for the test's sake
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		})
	})
	h := startProxyTo(t, up, up.URL, func(o *Options) {
		o.StreamIdleTimeout, o.ResponseHeaderTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	c := h.dial(t)
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	_, _ = io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
	// ReverseProxy ends a response whose upstream body fails by closing the client's
	// connection (what it had buffered is lost): the client sees the connection end
	// instead of waiting for its own deadline.
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		_, err = io.ReadAll(res.Body)
	}
	if err == nil || isTimeout(err) {
		t.Fatalf("stalled upstream body: %v; want the connection cut", err)
	}
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "i/o timeout")
}

// An upstream connection idle in the pool has a read pending since the pool took it;
// a request sent on it later gets the whole timeout for its answer, not what was left
// of the pending read's.
func TestPooledConnectionGetsAFreshDeadline(t *testing.T) {
	const idle = 2 * time.Second
	up := newUpstream(t, func(u *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/public/slow" {
				time.Sleep(1400 * time.Millisecond)
			}
			u.record(w, r)
		})
	})
	h := startProxyTo(t, up, up.URL, func(o *Options) { o.StreamIdleTimeout, o.ResponseHeaderTimeout = idle, idle })
	get := func(path string) int {
		res, err := http.Get("http://" + h.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if code := get("/public/fast"); code != http.StatusOK {
		t.Fatal(code)
	}
	time.Sleep(1200 * time.Millisecond) // the pooled connection's read has 0.8 s left
	if code := get("/public/slow"); code != http.StatusOK {
		t.Fatalf("answer 1.4 s after a request on a pooled connection: %d", code)
	}
	if n := len(up.requests()); n != 2 {
		t.Fatalf("upstream saw %d requests", n)
	}
}

// An upgraded connection's upstream side is not cut for being idle: a WebSocket may be
// quiet for longer than the timeout.
func TestIdleWebSocketOutlivesTheTimeout(t *testing.T) {
	up := newWebSocketUpstream(t)
	h := startProxyTo(t, up, up.URL, func(o *Options) {
		o.StreamIdleTimeout, o.ResponseHeaderTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	c, br := dialRaw(t, h.addr)
	_, _ = io.WriteString(c, "GET /api/ws HTTP/1.1\r\nHost: a\r\nX-Api-Key: good-key\r\n"+wsHeaders+"\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	time.Sleep(time.Second) // quiet for three timeouts
	frame := "\x81\x05hello"
	_, _ = io.WriteString(c, frame)
	echo := make([]byte, len(frame))
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != frame {
		t.Fatalf("echo after a quiet second: %q, %v", echo, err)
	}
}
