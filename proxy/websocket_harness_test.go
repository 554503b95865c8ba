package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"
)

// The WebSocket peers below are written for the tests, independently of the proxy's
// scanner: blocking reads, whole frames, unmasking.

// wsTestFrame is one frame as a test peer writes or reads it.
type wsTestFrame struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	payload []byte
	// length16/length64 force a longer length encoding than the payload needs.
	length16, length64 bool
}

func clientFrame(op byte, fin bool, payload string) wsTestFrame {
	return wsTestFrame{fin: fin, op: op, masked: true, payload: []byte(payload)}
}

func textMsg(s string) wsTestFrame { return clientFrame(wsOpText, true, s) }

// bytes encodes f; a masked frame uses a fixed, non-zero key.
func (f wsTestFrame) bytes() []byte {
	b := []byte{f.op&0x0f | f.rsv<<4, 0}
	if f.fin {
		b[0] |= 0x80
	}
	n := len(f.payload)
	switch {
	case n > 0xffff || f.length64:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125 || f.length16:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = byte(n)
	}
	p := bytes.Clone(f.payload)
	if f.masked {
		b[1] |= 0x80
		key := [4]byte{0x5a, 0x17, 0xc3, 0x81}
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(b, p...)
}

func frames(fs ...wsTestFrame) []byte {
	var out []byte
	for _, f := range fs {
		out = append(out, f.bytes()...)
	}
	return out
}

// readTestFrame reads one frame and unmasks it.
func readTestFrame(r io.Reader) (wsTestFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsTestFrame{}, err
	}
	f := wsTestFrame{fin: h[0]&0x80 != 0, rsv: h[0] >> 4 & 7, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	var ext [8]byte
	switch n {
	case 126:
		if _, err := io.ReadFull(r, ext[:2]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:2]))
	case 127:
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 16<<20 {
		return f, fmt.Errorf("test frame of %d bytes", n)
	}
	if br, ok := r.(*bytes.Reader); ok && uint64(br.Len()) < n { // do not allocate for a truncated frame
		return f, io.ErrUnexpectedEOF
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i%4]
		}
	}
	return f, nil
}

// closeCode returns the status code of a Close frame's payload (1005 when absent).
func (f wsTestFrame) closeCode() int {
	if len(f.payload) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

// halfFrame makes the echo upstream answer with the start of a frame it never ends.
const halfFrame = "send half a frame"

// errClosedByUpstream is the upstream's last event after it answered a Close.
var errClosedByUpstream = errors.New("upstream answered the Close and hung up")

// wsEvent is what the upstream saw: a frame, or the error that ended its connection.
type wsEvent struct {
	frame wsTestFrame
	err   error
}

// wsEchoUpstream is a WebSocket server on the stdlib: it completes the handshake,
// echoes data frames (as server frames, keeping fragmentation), answers pings, and
// answers a Close with a Close and hangs up. Every frame it reads, and how each
// connection ended, goes to events.
type wsEchoUpstream struct {
	*recordingUpstream
	events chan wsEvent
}

func newWSEchoUpstream(t *testing.T) *wsEchoUpstream {
	u := &wsEchoUpstream{events: make(chan wsEvent, 1024)}
	u.recordingUpstream = newUpstream(t, func(_ *recordingUpstream, s *http.Server) {
		s.Handler = http.HandlerFunc(u.serve)
	})
	return u
}

func (u *wsEchoUpstream) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "websocket only", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		u.event(wsEvent{err: err})
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, _ = fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	if brw.Flush() != nil {
		return
	}
	for {
		f, err := readTestFrame(brw)
		u.event(wsEvent{frame: f, err: err})
		if err != nil {
			return
		}
		if f.op == wsOpText && string(f.payload) == halfFrame {
			// The head of a 1000-byte frame; the rest never comes.
			_, _ = c.Write(append([]byte{0x82, 126, 0x03, 0xe8}, halfFrame...))
			continue
		}
		reply := wsTestFrame{fin: f.fin, rsv: f.rsv, op: f.op, payload: f.payload}
		if f.op == wsOpPing {
			reply.op = wsOpPong
		}
		if _, err := c.Write(reply.bytes()); err != nil {
			u.event(wsEvent{err: fmt.Errorf("echo: %w", err)})
			return
		}
		if f.op == wsOpClose { // the server closes the connection first (RFC 6455 §7.1.1)
			u.event(wsEvent{err: errClosedByUpstream})
			return
		}
	}
}

func (u *wsEchoUpstream) event(e wsEvent) {
	select {
	case u.events <- e:
	default: // a test that floods more than the buffer does not look at them all
	}
}

// next returns the upstream's next event, failing the test after 10s.
func (u *wsEchoUpstream) next(t *testing.T) wsEvent {
	t.Helper()
	select {
	case e := <-u.events:
		return e
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("upstream saw nothing for 10s\n%s", buf[:runtime.Stack(buf, true)])
		return wsEvent{}
	}
}

// wsHandshake opens a WebSocket through the proxy at addr and returns the connection
// and its reader, positioned after the 101.
func wsHandshake(t *testing.T, addr string, extra string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, br := dialRaw(t, addr)
	if _, err := io.WriteString(c, "GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+extra+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %d", res.StatusCode)
	}
	return c, br
}

// wantClientClose reads frames (echoes first) until a Close frame with code, then
// expects the proxy to end the connection. It returns the frames before the Close.
func wantClientClose(t *testing.T, br *bufio.Reader, code int) []wsTestFrame {
	t.Helper()
	var before []wsTestFrame
	for range 10000 {
		f, err := readTestFrame(br)
		if err != nil {
			t.Fatalf("client: %v after %d frames, want a Close %d", err, len(before), code)
		}
		if f.op != wsOpClose {
			before = append(before, f)
			continue
		}
		if f.masked || f.closeCode() != code {
			t.Fatalf("client got Close %d (masked %v), want %d", f.closeCode(), f.masked, code)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("client connection still open after the Close")
		}
		return before
	}
	t.Fatal("no Close frame")
	return nil
}

// wantUpstreamClose reads upstream events until a Close frame with code, then expects
// the connection to end. Every frame the upstream saw must be masked. It returns the
// data frames before the Close.
func (u *wsEchoUpstream) wantClose(t *testing.T, code int) []wsTestFrame {
	t.Helper()
	var before []wsTestFrame
	for {
		e := u.next(t)
		if e.err != nil {
			t.Fatalf("upstream: %v after %d frames, want a Close %d", e.err, len(before), code)
		}
		if !e.frame.masked {
			t.Errorf("upstream got an unmasked frame %+v", e.frame)
		}
		if e.frame.op != wsOpClose {
			before = append(before, e.frame)
			continue
		}
		if e.frame.closeCode() != code {
			t.Fatalf("upstream got Close %d, want %d", e.frame.closeCode(), code)
		}
		if e := u.next(t); e.err != errClosedByUpstream {
			t.Fatalf("upstream after the Close: %+v", e)
		}
		return before
	}
}

// closeRecorder collects OnClose reasons and the proxy's log.
type closeRecorder struct {
	mu      sync.Mutex
	reasons []string
	logs    *observer.ObservedLogs
}

// policyLogs returns the proxy's log lines about policy closes.
func (r *closeRecorder) policyLogs() []observer.LoggedEntry {
	return r.logs.FilterMessage("websocket closed by policy").All()
}

func (r *closeRecorder) record(reason string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.mu.Unlock()
}

func (r *closeRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

// stableGoroutines returns the goroutine count once it stopped changing (bounded).
func stableGoroutines() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(5 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// settleGoroutines waits (bounded) until no more goroutines run than base.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	n := 0
	for range 500 {
		if n = runtime.NumGoroutine(); n <= base {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("%d goroutines, %d before the connection:\n%s", n, base, buf[:runtime.Stack(buf, true)])
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}
