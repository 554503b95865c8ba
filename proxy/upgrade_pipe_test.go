package proxy

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Bytes the client sends right behind the upgrade request (before the 101) reach the
// upstream in both modes; without message limits they were lost (found by a second
// reader's review).
func TestEarlyBytesReachUpstreamInBothModes(t *testing.T) {
	for _, limits := range []bool{false, true} {
		up := newWebSocketUpstream(t)
		h := startProxyTo(t, up, up.URL, func(o *Options) {
			if limits {
				o.WebSocket.MaxMessageBytes = 1 << 20
			}
		})
		c, br := dialRaw(t, h.addr)
		frame := "\x81\x85\x00\x00\x00\x00hello"
		_, _ = io.WriteString(c, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n"+frame)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", res, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		echo := make([]byte, len(frame))
		n, err := io.ReadFull(br, echo)
		if err != nil || string(echo) != frame {
			t.Errorf("limits=%v: early frame lost: got %q (%d bytes), %v", limits, echo[:n], n, err)
		}
	}
}

// Every request gets a decision log line (and a deny an audit event), including the
