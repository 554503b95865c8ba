package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// BenchmarkWebSocketScan is the per-frame cost of the limits: 256 masked client frames
// of 125 bytes per op, scanned with size and rate limits (client to upstream) and for
// boundaries only (upstream to client).
func BenchmarkWebSocketScan(b *testing.B) {
	const perOp = 256
	stream := bytes.Repeat(clientFrame(wsOpBinary, true, strings.Repeat("x", 125)).bytes(), perOp)
	lim := &wsLimits{maxBytes: 1 << 20, perNano: 1e12 / float64(time.Second), burst: 1e12, now: time.Now}
	for _, bc := range []struct {
		name string
		lim  *wsLimits
	}{{"limits", lim}, {"size-only", sizeLimit(1 << 20)}, {"boundaries", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newWSScanner(bc.lim, false)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				if n, v := s.scan(stream); n != len(stream) || v != nil {
					b.Fatal(n, v)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perOp), "ns/frame")
		})
	}
}

// BenchmarkWebSocketTunnel sends 125-byte messages through the proxy to the echo
// upstream over loopback and reads the echoes, 64 per round trip, without limits (a
// byte pipe) and with them.
func BenchmarkWebSocketTunnel(b *testing.B) {
	for _, bc := range []struct {
		name string
		ws   WebSocketOptions
	}{{"off", WebSocketOptions{}}, {"limits", WebSocketOptions{MaxMessageBytes: 1 << 20, MessagesPerSecond: 1e9}}} {
		b.Run(bc.name, func(b *testing.B) {
			c, br := startWSTunnel(b, bc.ws)
			const batch = 64
			msg := bytes.Repeat(clientFrame(wsOpBinary, true, strings.Repeat("x", 125)).bytes(), batch)
			echo := make([]byte, batch*(2+125))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, echo); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
		})
	}
}

// startWSTunnel runs the echo upstream and a proxy with ws on loopback and returns a
// client connection upgraded through them.
func startWSTunnel(b *testing.B, ws WebSocketOptions) (net.Conn, *bufio.Reader) {
	up := &wsEchoUpstream{events: make(chan wsEvent, 1)} // events past the first are dropped
	upSrv := httptest.NewServer(http.HandlerFunc(up.serve))
	b.Cleanup(upSrv.Close)
	target, _ := url.Parse(upSrv.URL)
	p, err := New(Options{Engine: engine.New(testTable(b)), Upstream: target, WebSocket: ws})
	if err != nil {
		b.Fatal(err)
	}
	ln := listenLoopback(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n"); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("handshake: %v, %v", res, err)
	}
	return c, br
}
