package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// rawUpgradeUpstream switches every request to websocket, then reads until the proxy
// half-closes its side and answers with a last message before closing.
func rawUpgradeUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
				_, _ = io.Copy(io.Discard, br) // until the proxy's FIN
				_, _ = c.Write([]byte("\x81\x03bye"))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A client that half-closes an upgraded connection still gets what the upstream sends
// after seeing that FIN (the pipe forwards the half-close instead of tearing down).
func TestUpgradeHalfCloseReachesUpstream(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"no stream idle timeout": func(o *Options) { o.StreamIdleTimeout = -1 },
		"stream idle timeout":    func(o *Options) { o.StreamIdleTimeout = 5 * time.Second },
		"limits, idle timeout":   func(o *Options) { o.StreamIdleTimeout, o.WebSocket.MaxMessageBytes = 5*time.Second, 1<<20 },
	} {
		t.Run(name, func(t *testing.T) {
			h := startProxyTo(t, newRecordingUpstream(t), rawUpgradeUpstream(t), mod)
			c, br := dialRaw(t, h.addr)
			_, _ = io.WriteString(c, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n")
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", res, err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(br)
			if string(got) != "\x81\x03bye" {
				t.Fatalf("after the client's half-close: %q, %v; want the upstream's last frame", got, err)
			}
		})
	}
}
