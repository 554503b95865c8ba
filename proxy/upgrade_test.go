package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// newWebSocketUpstream answers an upgrade with a raw 101 and then echoes every byte.
// Plain requests are recorded like the recording upstream's.
func newWebSocketUpstream(t *testing.T) *recordingUpstream {
	return newUpstream(t, func(up *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { webSocketEcho(t, up, w, r) })
	})
}

func webSocketEcho(t *testing.T, up *recordingUpstream, w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "websocket" {
		up.record(w, r)
		return
	}
	up.mu.Lock()
	up.got = append(up.got, recorded{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone()})
	up.mu.Unlock()
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Request-Id: upstream\r\n\r\n")
	_ = brw.Flush()
	_, _ = io.Copy(c, brw)
}

const wsHeaders = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestWebSocketUpgrade(t *testing.T) {
	up := newWebSocketUpstream(t)
	h := startProxyTo(t, up, up.URL, nil)
	c, br := dialRaw(t, h.addr)
	_, _ = io.WriteString(c, "GET /api/ws HTTP/1.1\r\nHost: a\r\nX-Api-Key: good-key\r\nX-Portcullis-Subject: root\r\n"+wsHeaders+"\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("response %d %v", res.StatusCode, res.Header)
	}
	if ids := res.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] == "upstream" {
		t.Errorf("request ids %q", ids)
	}
	if got := up.only(t).Header.Get("X-Portcullis-Subject"); got != "alice" {
		t.Errorf("upstream subject %q", got)
	}
	// After the 101 the connection is a pipe: bytes that would be malformed HTTP pass.
	frame := "\x81\x05hello\nGET / HTTP/1.1\n\n"
	_, _ = io.WriteString(c, frame)
	echo := make([]byte, len(frame))
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != frame {
		t.Fatalf("echo %q, %v", echo, err)
	}
}

func TestWebSocketDenied(t *testing.T) {
	up := newWebSocketUpstream(t)
	h := startProxyTo(t, up, up.URL, nil)
	// Denied before the upstream sees it; the connection ends with the answer, so
	// bytes sent after the upgrade request are never parsed as requests.
	rs := h.send(t, "GET /api/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\nGET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
	wantStatuses(t, rs, 401)
	if rs[0].Close != true {
		t.Errorf("denied upgrade kept the connection open")
	}
	up.sawNothing(t)

	// Allowed, but the upstream does not switch: the connection ends after the answer.
	plain := startProxy(t, nil)
	rs = plain.send(t, "GET /public/ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
	wantStatuses(t, rs, 200)
	if got := plain.up.only(t).RequestURI; got != "/public/ws" {
		t.Errorf("upstream saw %q", got)
	}

	disabled := startProxyTo(t, up, up.URL, func(o *Options) { o.WebSocket.Disabled = true })
	rs = disabled.send(t, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n")
	wantStatuses(t, rs, 400)
}

// Cancelling Serve's context lets an in-flight request finish, refuses new
// connections, and returns nil once drained.
func TestGracefulDrain(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(_ *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-release
			_, _ = io.WriteString(w, "late but complete")
		})
	})
	h := startProxyTo(t, up, up.URL, nil)
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + h.addr + "/public/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{string(b), err}
	}()
	<-arrived
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	// The listener closes soon after the cancel; wait for it (bounded).
	refused := false
	for range 500 {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Fatal("listener still accepting after cancel")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "late but complete" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// Upgraded connections get the rest of the drain budget, then are closed.
func TestDrainClosesTunnels(t *testing.T) {
	up := newWebSocketUpstream(t)
	h := startProxyTo(t, up, up.URL, func(o *Options) { o.ShutdownTimeout = 100 * time.Millisecond })
	c, br := dialRaw(t, h.addr)
	_, _ = io.WriteString(c, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	if err := h.stop(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("tunnel still open after the drain")
	}
}
