package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A denied request whose client stalls its body (Slowloris on the body of a request
// the proxy will never forward) still gets its answer within the idle timeout, and
// the connection does not stay held.
func TestDeniedRequestStalledBody(t *testing.T) {
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/admin/x", http.StatusForbidden},
		{"/api/x", http.StatusUnauthorized},
	} {
		t.Run(tc.path, func(t *testing.T) {
			h := startProxy(t, func(o *Options) { o.StreamIdleTimeout = 300 * time.Millisecond })
			c := h.dial(t)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "POST "+tc.path+" HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer 5 s after a denied request's body stalled (idle timeout 300 ms): %v", err)
			}
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
}

// The same with an upstream that cannot be reached: the 502 must not wait on the
// client's stalled body.
func TestUnreachableUpstreamStalledBody(t *testing.T) {
	ln := listenClosedPort(t)
	h := startProxyTo(t, newRecordingUpstream(t), "http://"+ln, func(o *Options) { o.StreamIdleTimeout = 300 * time.Millisecond })
	c := h.dial(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer 5 s after the body stalled (idle timeout 300 ms): %v", err)
	}
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", res.StatusCode)
	}
}

func listenClosedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// After an answer that leaves a body unread, the connection ends instead of waiting
// on the client: a request refused by the front-end with a stalled body, and a denied
// Expect: 100-continue request (the client will never send the body it was not asked
// for).
func TestUnreadBodyConnectionCloses(t *testing.T) {
	for name, raw := range map[string]string{
		"refused, stalled body": "POST /public/x HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\nContent-Length: 100\r\n\r\n0123456789",
		"denied Expect":         "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			h := startProxy(t, func(o *Options) { o.StreamIdleTimeout, o.IdleTimeout = 300*time.Millisecond, 500*time.Millisecond })
			c := h.dial(t)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, raw)
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			_, _ = io.ReadAll(res.Body)
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after %d (Connection %q) the proxy still holds the connection: %v", res.StatusCode, res.Header.Get("Connection"), err)
			}
		})
	}
}
