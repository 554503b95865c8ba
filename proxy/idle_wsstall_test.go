package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// After a switch, an upstream that stops reading (its receive window full) while the
// client keeps sending is a stalled exchange, not an idle WebSocket: the proxy's write
// to it should fail after the idle timeout and the tunnel end.
func TestUpgradedUpstreamNotReadingIsCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		// never reads again
	}()
	h := startProxyTo(t, newRecordingUpstream(t), "http://"+ln.Addr().String(), func(o *Options) {
		o.StreamIdleTimeout, o.ResponseHeaderTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	c, br := dialRaw(t, h.addr)
	_, _ = io.WriteString(c, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n")
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	// Fill the upstream's and the proxy's buffers, then wait for the proxy to give up.
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	chunk := []byte(strings.Repeat("x", 64<<10))
	for {
		if _, err := c.Write(chunk); err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	if err == nil || isTimeout(err) {
		t.Fatalf("tunnel to an upstream that stopped reading still open 3 s later (idle timeout 300 ms): %v", err)
	}
}
