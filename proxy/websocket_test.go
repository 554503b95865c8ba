package proxy

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/websocket"

	"github.com/portcullis/portcullis/pkg/engine"
)

// startWSProxy runs a proxy with WebSocket limits in front of a WebSocket echo
// upstream and returns it with the upstream and the recorder of OnClose reasons.
func startWSProxy(t *testing.T, ws WebSocketOptions) (*harness, *wsEchoUpstream, *closeRecorder) {
	t.Helper()
	up := newWSEchoUpstream(t)
	core, logs := observer.New(zap.InfoLevel)
	rec := &closeRecorder{logs: logs}
	ws.OnClose = rec.record
	h := startProxyTo(t, up.recordingUpstream, up.URL, func(o *Options) {
		o.WebSocket = ws
		o.Logger = zap.New(core)
	})
	// One full exchange before any test takes its goroutine baseline: a dial that was
	// only accepted did not show that Serve's accept loop had started, and a baseline
	// taken before it was one short.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Get("http://" + h.addr + "/public/warm-up")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return h, up, rec
}

// Messages within the limits pass both ways, frame for frame, with fragments and
// control frames in between, including frames the client sent before the 101 arrived.
func TestWebSocketLimitsPassMessages(t *testing.T) {
	h, up, rec := startWSProxy(t, WebSocketOptions{MaxMessageBytes: 70000, MessagesPerSecond: 1000, Burst: 100})
	base := stableGoroutines()
	c, br := dialRaw(t, h.addr)
	early := textMsg("sent before the 101")
	if _, err := c.Write(append([]byte("GET /public/ws HTTP/1.1\r\nHost: a\r\n"+wsHeaders+"\r\n"), early.bytes()...)); err != nil {
		t.Fatal(err)
	}
	if _, err := readHTTP101(br); err != nil {
		t.Fatal(err)
	}
	sent := []wsTestFrame{
		early,
		textMsg("hello"),
		clientFrame(wsOpBinary, false, "abc"),
		clientFrame(wsOpPing, true, "ping inside a fragmented message"),
		clientFrame(wsOpContinuation, false, strings.Repeat("b", 40000)),
		clientFrame(wsOpContinuation, true, strings.Repeat("c", 29997)),                    // 70000 bytes in all: the limit
		{fin: true, op: wsOpBinary, masked: true, payload: bytes.Repeat([]byte{0}, 66000)}, // 64-bit length
		textMsg(""),
	}
	// Byte by byte for the first frames after the early one: headers split everywhere.
	for _, b := range frames(sent[1:3]...) {
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(frames(sent[3:]...)); err != nil {
		t.Fatal(err)
	}
	for i, want := range sent {
		e := up.next(t)
		if e.err != nil || !sameFrame(e.frame, want) {
			t.Fatalf("upstream frame %d: %+v, %v; want %+v", i, e.frame, e.err, want)
		}
		got, err := readTestFrame(br)
		if want.op == wsOpPing {
			want.op = wsOpPong
		}
		if err != nil || got.masked || !sameFrame(got, want) {
			t.Fatalf("client frame %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	// A normal close: the client's Close passes, the upstream answers and hangs up.
	if _, err := c.Write(clientFrame(wsOpClose, true, "\x03\xe8bye").bytes()); err != nil {
		t.Fatal(err)
	}
	if f, err := readTestFrame(br); err != nil || f.op != wsOpClose || f.closeCode() != 1000 {
		t.Fatalf("close echo: %+v, %v", f, err)
	}
	if _, err := br.ReadByte(); !isClosedErr(err) {
		t.Fatalf("client after the close: %v", err)
	}
	c.Close()
	if e := up.next(t); e.err != nil || e.frame.op != wsOpClose {
		t.Fatalf("upstream: %+v, want the client's Close", e)
	}
	if e := up.next(t); e.err != errClosedByUpstream {
		t.Fatalf("upstream after the close: %+v", e)
	}
	settleGoroutines(t, base)
	if got := rec.got(); len(got) != 0 {
		t.Errorf("OnClose called: %v", got)
	}
}

func readHTTP101(br interface{ ReadString(byte) (string, error) }) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			return head.String(), err
		}
	}
}

// sameFrame compares what a peer reads with what was sent, ignoring the masking.
func sameFrame(got, want wsTestFrame) bool {
	return got.fin == want.fin && got.op == want.op && got.rsv == want.rsv && bytes.Equal(got.payload, want.payload)
}

// An independent client implementation (golang.org/x/net/websocket) talks through
// the proxy with limits on.
func TestWebSocketLimitsInterop(t *testing.T) {
	h, _, rec := startWSProxy(t, WebSocketOptions{MaxMessageBytes: 1 << 20, MessagesPerSecond: 100})
	base := stableGoroutines()
	ws, err := websocket.Dial("ws://"+h.addr+"/public/ws", "", "http://"+h.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"one", strings.Repeat("two", 20000), ""} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
		}
	}
	ws.Close()
	settleGoroutines(t, base)
	if got := rec.got(); len(got) != 0 {
		t.Errorf("OnClose called: %v", got)
	}
}

// A message over the size limit, in one frame or split across fragments, closes the
// connection with 1008 both ways before any byte of the frame that crosses the limit
// reaches the upstream.
func TestWebSocketSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		frames   []wsTestFrame
		upstream int // data frames the upstream gets before the Close
	}{
		{"one frame", []wsTestFrame{textMsg("ok"), textMsg(strings.Repeat("x", 101))}, 1},
		{"16-bit length", []wsTestFrame{clientFrame(wsOpBinary, true, strings.Repeat("x", 70000))}, 0},
		{"fragments", []wsTestFrame{
			clientFrame(wsOpText, false, strings.Repeat("a", 60)),
			clientFrame(wsOpContinuation, false, strings.Repeat("b", 40)),
			clientFrame(wsOpContinuation, true, "c"),
		}, 2},
		{"empty fragments then one too many", []wsTestFrame{
			clientFrame(wsOpBinary, false, ""),
			clientFrame(wsOpContinuation, false, strings.Repeat("a", 100)),
			clientFrame(wsOpPing, true, ""),
			clientFrame(wsOpContinuation, true, "b"),
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, up, rec := startWSProxy(t, WebSocketOptions{MaxMessageBytes: 100})
			base := stableGoroutines()
			c, br := wsHandshake(t, h.addr, "")
			if _, err := c.Write(frames(tc.frames...)); err != nil {
				t.Fatal(err)
			}
			before := up.wantClose(t, 1008)
			if data := dataFrames(before); data != tc.upstream {
				t.Errorf("upstream got %d data frames before the Close, want %d", data, tc.upstream)
			}
			wantClientClose(t, br, 1008)
			c.Close()
			settleGoroutines(t, base)
			if got := rec.got(); !slices.Equal(got, []string{"size"}) {
				t.Errorf("OnClose reasons %v", got)
			}
		})
	}
}

func dataFrames(fs []wsTestFrame) int {
	n := 0
	for _, f := range fs {
		if f.op < wsOpClose {
			n++
		}
	}
	return n
}

// A flood of messages over the rate closes the connection with 1008 both ways; the
// burst passes first. Pings count as messages.
func TestWebSocketRateLimit(t *testing.T) {
	for _, op := range []byte{wsOpText, wsOpPing} {
		h, up, rec := startWSProxy(t, WebSocketOptions{MessagesPerSecond: 1, Burst: 3})
		base := stableGoroutines()
		c, br := wsHandshake(t, h.addr, "")
		flood := make([]wsTestFrame, 200)
		for i := range flood {
			flood[i] = clientFrame(op, true, "m")
		}
		// The client may find the connection closed while still writing.
		if _, err := c.Write(frames(flood...)); err != nil && !isClosedErr(err) {
			t.Fatal(err)
		}
		// The bucket refills one message a second: however slow this machine, far
		// fewer than the 200 sent pass.
		if before := up.wantClose(t, 1008); len(before) < 3 || len(before) > 20 {
			t.Errorf("opcode %d: upstream got %d messages before the Close", op, len(before))
		}
		wantClientClose(t, br, 1008)
		c.Close()
		settleGoroutines(t, base)
		if got := rec.got(); !slices.Equal(got, []string{"rate"}) {
			t.Errorf("OnClose reasons %v", got)
		}
		logs := rec.policyLogs()
		if len(logs) != 1 || logs[0].ContextMap()["reason"] != "rate" || logs[0].ContextMap()["code"] != int64(1008) ||
			logs[0].ContextMap()["client_ip"] != "127.0.0.1" || logs[0].ContextMap()["request_id"] == "" {
			t.Errorf("log lines %+v", logs)
		}
	}
}

// Frames breaking RFC 6455 close the connection with 1002 both ways; nothing of the
// offending frame reaches the upstream.
func TestWebSocketProtocolErrors(t *testing.T) {
	long := strings.Repeat("p", 126)
	for _, tc := range []struct {
		name  string
		frame wsTestFrame
		lead  []wsTestFrame // frames sent first (they pass)
		ext   bool          // the client offers an extension
	}{
		{name: "unmasked", frame: wsTestFrame{fin: true, op: wsOpText, payload: []byte("hi")}},
		{name: "unmasked close", frame: wsTestFrame{fin: true, op: wsOpClose, payload: []byte("\x03\xe8")}},
		{name: "long ping", frame: clientFrame(wsOpPing, true, long)},
		{name: "fragmented ping", frame: clientFrame(wsOpPing, false, "")},
		{name: "reserved opcode", frame: clientFrame(0x3, true, "")},
		{name: "reserved control opcode", frame: clientFrame(0xB, true, "")},
		{name: "close with a 1-byte payload", frame: clientFrame(wsOpClose, true, "\x03")},
		{name: "continuation first", frame: clientFrame(wsOpContinuation, true, "x")},
		{name: "message inside a message", lead: []wsTestFrame{clientFrame(wsOpText, false, "a")},
			frame: textMsg("b")},
		{name: "rsv1 without extension", frame: wsTestFrame{fin: true, rsv: 4, op: wsOpText, masked: true}},
		{name: "unmasked after an rsv1 frame the extension allows", ext: true,
			lead:  []wsTestFrame{{fin: true, rsv: 4, op: wsOpText, masked: true, payload: []byte("z")}},
			frame: wsTestFrame{fin: true, op: wsOpText, payload: []byte("hi")}},
		{name: "non-minimal 16-bit length", frame: wsTestFrame{fin: true, op: wsOpText, masked: true, payload: []byte("x"), length16: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, up, rec := startWSProxy(t, WebSocketOptions{MaxMessageBytes: 1 << 20})
			base := stableGoroutines()
			extra := ""
			if tc.ext {
				extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
			}
			c, br := wsHandshake(t, h.addr, extra)
			if _, err := c.Write(append(frames(tc.lead...), tc.frame.bytes()...)); err != nil {
				t.Fatal(err)
			}
			if before := up.wantClose(t, 1002); len(before) != len(tc.lead) {
				t.Errorf("upstream got %d frames before the Close, want %d", len(before), len(tc.lead))
			}
			wantClientClose(t, br, 1002)
			c.Close()
			settleGoroutines(t, base)
			if got := rec.got(); !slices.Equal(got, []string{"protocol"}) {
				t.Errorf("OnClose reasons %v", got)
			}
		})
	}
}

// The proxy's Close frame never lands inside an upstream frame: when the upstream is
// in the middle of one, the client gets the bytes so far and the end of the stream.
func TestWebSocketCloseAtFrameBoundary(t *testing.T) {
	h, up, rec := startWSProxy(t, WebSocketOptions{MaxMessageBytes: 100})
	base := stableGoroutines()
	c, br := wsHandshake(t, h.addr, "")
	if _, err := c.Write(textMsg(halfFrame).bytes()); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4+len(halfFrame))
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(textMsg(strings.Repeat("x", 101)).bytes()); err != nil {
		t.Fatal(err)
	}
	up.wantClose(t, 1008)
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("client read %#x after the upstream's partial frame", b)
	}
	c.Close()
	settleGoroutines(t, base)
	if got := rec.got(); !slices.Equal(got, []string{"size"}) {
		t.Errorf("OnClose reasons %v", got)
	}
}

// When the client goes away, both directions stop and every goroutine of the tunnel
// ends, with limits on.
func TestWebSocketClientVanishes(t *testing.T) {
	h, up, _ := startWSProxy(t, WebSocketOptions{MaxMessageBytes: 1 << 10, MessagesPerSecond: 10})
	base := stableGoroutines()
	c, br := wsHandshake(t, h.addr, "")
	// Half a frame, then gone.
	if _, err := c.Write(textMsg("partial message").bytes()[:9]); err != nil {
		t.Fatal(err)
	}
	_ = br
	c.Close()
	if e := up.next(t); e.err == nil {
		t.Fatalf("upstream read %+v from a vanished client", e.frame)
	}
	settleGoroutines(t, base)
}

// Options validation, and no per-frame machinery without limits.
func TestWebSocketOptions(t *testing.T) {
	eng, up := engine.New(testTable(t)), &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	for _, ws := range []WebSocketOptions{
		{MaxMessageBytes: -1}, {MessagesPerSecond: -1}, {MessagesPerSecond: math.NaN()},
		{MessagesPerSecond: math.Inf(1)}, {Burst: -1},
	} {
		if _, err := New(Options{Engine: eng, Upstream: up, WebSocket: ws}); err == nil {
			t.Errorf("%+v accepted", ws)
		}
	}
	p, err := New(Options{Engine: eng, Upstream: up})
	if err != nil || p.ws != nil {
		t.Fatalf("limits off: ws %v, %v", p.ws, err)
	}
	p, err = New(Options{Engine: eng, Upstream: up, WebSocket: WebSocketOptions{MessagesPerSecond: 2.5}})
	if err != nil || p.ws == nil || p.ws.lim.burst != 3 {
		t.Fatalf("default burst: %+v, %v", p.ws, err)
	}
}
