package proxy

import (
	"bufio"
	"crypto/rand"
	"errors"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

const (
	// wsCloseTimeout bounds writing the client's Close frame when the client does not
	// read (a Write of upstream data may hold the connection's write side until then).
	wsCloseTimeout = time.Second
	// wsLingerTimeout bounds how long a connection closed by policy keeps reading
	// (and discarding) what the client still sends, so the kernel does not answer
	// unread bytes with a reset that could destroy the Close frame in flight.
	wsLingerTimeout = time.Second
	// wsSmallRead is the read size below which reads go through the connection's own
	// buffer, so a held partial header always leaves room for new bytes.
	wsSmallRead = 2 * wsMaxFrameHeader
)

// check validates the message limits.
func (w *WebSocketOptions) check() error {
	switch {
	case w.MaxMessageBytes < 0:
		return errors.New("websocket max message bytes must not be negative")
	case w.MessagesPerSecond < 0 || math.IsNaN(w.MessagesPerSecond) || math.IsInf(w.MessagesPerSecond, 0):
		return errors.New("websocket messages per second must be a finite number, at least 0")
	case w.Burst < 0:
		return errors.New("websocket burst must not be negative")
	}
	return nil
}

// webSocket is the proxy's handling of upgraded connections with message limits.
type webSocket struct {
	lim     wsLimits
	log     *zap.Logger
	onClose func(reason string)
}

// newWebSocket returns the limits of o, or nil when none is set: upgraded connections
// are then plain byte pipes, with no cost per frame.
func newWebSocket(o *WebSocketOptions, log *zap.Logger) *webSocket {
	if o.MaxMessageBytes == 0 && o.MessagesPerSecond == 0 {
		return nil
	}
	ws := &webSocket{log: log, onClose: o.OnClose}
	ws.lim = wsLimits{maxBytes: o.MaxMessageBytes, now: time.Now}
	if o.MessagesPerSecond > 0 {
		ws.lim.perNano = o.MessagesPerSecond / float64(time.Second)
		ws.lim.burst = float64(o.Burst)
		if o.Burst == 0 {
			ws.lim.burst = max(1, math.Ceil(o.MessagesPerSecond))
		}
	}
	return ws
}

// wrap returns w with a Hijack that hands ReverseProxy the client connection wrapped
// in a wsConn. It is used for allowed upgrade requests; ReverseProxy hijacks only
// after the upstream answered 101.
func (ws *webSocket) wrap(w http.ResponseWriter, r *http.Request, x *exchange) http.ResponseWriter {
	return &wsResponseWriter{
		ResponseWriter: w, ws: ws,
		allowRSV:  len(r.Header["Sec-Websocket-Extensions"]) > 0,
		requestID: x.req.ID, clientIP: x.req.Peer.IP.String(),
	}
}

// wsResponseWriter is the ResponseWriter of an upgrade request with message limits.
type wsResponseWriter struct {
	http.ResponseWriter
	ws                  *webSocket
	allowRSV            bool
	requestID, clientIP string
}

// Unwrap lets http.ResponseController reach the server's writer (Flush and friends).
func (w *wsResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes over the client connection and wraps it so client frames are checked.
func (w *wsResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	wc := &wsConn{
		Conn: withEarly(c, brw), ws: w.ws, requestID: w.requestID, clientIP: w.clientIP,
		in:           newWSScanner(&w.ws.lim, w.allowRSV),
		out:          newWSScanner(nil, false),
		upstreamDone: make(chan struct{}),
	}
	return wc, brw, nil
}

// wsConn is an upgraded client connection with message limits. Read (one goroutine:
// ReverseProxy's client-to-upstream copier) releases client bytes frame by frame after
// checking each header; on a violation it sends the client a Close frame, returns a
// masked Close frame for the upstream, then the violation as its error, which ends
// the tunnel. Write (the upstream-to-client copier) passes bytes through and tracks
// frame boundaries, so the proxy's Close frame never lands inside an upstream frame.
type wsConn struct {
	net.Conn
	ws                  *webSocket
	requestID, clientIP string

	// Read side.
	in       wsScanner
	pending  []byte // released bytes not yet returned (reads smaller than wsSmallRead)
	closing  []byte // the upstream's Close frame, returned after pending
	readErr  error
	violated bool // readErr is a violation, returned after the upstream's Close frame
	waited   bool // the upstream had its chance to close first
	small    [wsSmallRead]byte
	closeBuf [2 + 4 + wsMaxControlPayload]byte

	// Write side: wmu serializes frames written to the client.
	wmu        sync.Mutex
	out        wsScanner
	clientDone bool // the proxy closed the client stream: upstream bytes are dropped

	// upstreamDone is closed when the upstream stopped sending (ReverseProxy calls
	// CloseWrite) or the tunnel is closing.
	upstreamDone chan struct{}
	doneOnce     sync.Once

	lingering atomic.Bool // closed by policy: drain the client before closing
	closeOnce sync.Once
	closeErr  error
}

// Read returns the next client bytes the limits allow.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		switch {
		case len(c.pending) > 0:
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		case len(c.closing) > 0:
			n := copy(p, c.closing)
			c.closing = c.closing[n:]
			return n, nil
		case c.readErr != nil:
			if c.violated && !c.waited {
				c.waitUpstream()
			}
			return 0, c.readErr
		case len(p) >= wsSmallRead:
			if n, err := c.readFrames(p); n > 0 || err != nil {
				return n, err
			}
		default:
			n, err := c.readFrames(c.small[:])
			if n == 0 && err != nil {
				return 0, err
			}
			c.pending = c.small[:n]
		}
	}
}

// readFrames reads into p behind any held partial header and releases the bytes up
// to the next incomplete or refused header. It returns 0 bytes only with an error or
// with the upstream's Close frame queued in c.closing.
func (c *wsConn) readFrames(p []byte) (int, error) {
	for {
		h := copy(p, c.in.hdr[:c.in.nhdr])
		c.in.nhdr = 0
		n, err := c.Conn.Read(p[h:])
		ok, v := c.in.scan(p[:h+n])
		if v != nil {
			c.violate(v)
			return ok, nil
		}
		if ok > 0 {
			if err != nil {
				c.readErr = err
			}
			return ok, nil
		}
		if err != nil {
			c.readErr = err
			return 0, err
		}
	}
}

// violate closes the tunnel for v: a Close frame to the client now (when the client
// stream is between frames), a masked Close frame queued for the upstream, and the
// violation as the read error after it.
func (c *wsConn) violate(v *wsViolation) {
	c.writeClientClose(v)
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	c.closing = appendWSClose(c.closeBuf[:0], v.code, v.text, &mask)
	c.readErr, c.violated = v, true
	c.lingering.Store(true)
	if ce := c.ws.log.Check(zap.WarnLevel, "websocket closed by policy"); ce != nil {
		ce.Write(zap.String("reason", v.reason), zap.Int("code", int(v.code)), zap.String("detail", v.text),
			zap.String("request_id", c.requestID), zap.String("client_ip", c.clientIP))
	}
	if c.ws.onClose != nil {
		c.ws.onClose(v.reason)
	}
}

// writeClientClose sends the client a Close frame for v, unless the upstream's last
// frame to the client is unfinished, then half-closes the client connection. Upstream
// bytes that arrive afterwards are dropped.
func (c *wsConn) writeClientClose(v *wsViolation) {
	// A Write stuck on a client that does not read holds wmu: the deadline frees it.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(wsCloseTimeout))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.clientDone {
		return
	}
	c.clientDone = true
	if c.out.atBoundary() {
		var buf [2 + 2 + 123]byte
		_, _ = c.Conn.Write(appendWSClose(buf[:0], v.code, v.text, nil))
	}
	_ = c.closeWrite()
}

// waitUpstream gives the upstream, which has its Close frame, up to wsLingerTimeout to
// answer and hang up. Meanwhile ReverseProxy's other copier keeps reading (and Write
// drops) what it sends, so no unread bytes make the kernel reset the upstream
// connection and destroy the Close frame before the upstream read it.
func (c *wsConn) waitUpstream() {
	c.waited = true
	t := time.NewTimer(wsLingerTimeout)
	defer t.Stop()
	select {
	case <-c.upstreamDone:
	case <-t.C:
	}
}

func (c *wsConn) upstreamStopped() { c.doneOnce.Do(func() { close(c.upstreamDone) }) }

// Write passes upstream bytes to the client, following their frames.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.clientDone {
		return len(p), nil // the client already has the proxy's Close frame
	}
	n, err := c.Conn.Write(p)
	c.out.scan(p[:n])
	return n, err
}

// CloseWrite half-closes the client connection (ReverseProxy calls it when the
// upstream finished sending).
func (c *wsConn) CloseWrite() error {
	c.upstreamStopped()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.clientDone = true
	return c.closeWrite()
}

func (c *wsConn) closeWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the client connection once. After a policy close the socket is closed
// by a goroutine that first reads and discards what the client still sends, until the
// client closes or wsLingerTimeout passes; Close returns at once, so ReverseProxy
// closes the upstream connection without waiting for the client.
func (c *wsConn) Close() error {
	c.upstreamStopped()
	c.closeOnce.Do(func() {
		if !c.lingering.Load() || c.Conn.SetReadDeadline(time.Now().Add(wsLingerTimeout)) != nil {
			c.closeErr = c.Conn.Close()
			return
		}
		go c.lingerClose()
	})
	return c.closeErr
}

func (c *wsConn) lingerClose() {
	var buf [1024]byte
	for {
		if _, err := c.Conn.Read(buf[:]); err != nil {
			break // EOF: the client closed; otherwise the deadline or a broken connection
		}
	}
	_ = c.Conn.Close()
}
