package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// syntheticReject replaces a rejected header block in the byte stream net/http reads.
// net/http serves requests of a connection one after another, so the handler sees it
// exactly in the place of the rejected request (after every earlier pipelined request
// has been answered), answers with the rejection's status, and closes the connection.
var syntheticReject = []byte(rejectMethod + " / HTTP/1.1\r\nHost: portcullis.invalid\r\nConnection: close\r\n\r\n")

// initialHoldBytes is the first size of a connection's hold buffer, allocated only when
// a header block arrives in pieces.
const initialHoldBytes = 4096

// conn is a client connection whose bytes pass through the raw scanner before net/http
// reads them. Read is called by one goroutine at a time (net/http's connection reader).
type conn struct {
	net.Conn
	sc scanner
	ln *listener

	// Bytes read from the network but not yet given to net/http are buf[r:w]; the first
	// ready of them are verified.
	buf   []byte
	r, w  int
	ready int
	// err is returned once buf is drained: io.EOF after a rejected header block, the
	// rejection itself for malformed chunked framing inside a body.
	err error
	// rejected is the header-block rejection the synthetic request stands for.
	rejected atomic.Pointer[rejection]
	// bodyRejected is the framing rejection met inside a body, for the handler to
	// answer with (net/http may report it only as a canceled request).
	bodyRejected atomic.Pointer[rejection]

	// wd bounds each write to the client by the stream idle timeout.
	wd writeDeadlines

	closeOnce sync.Once
	closeErr  error
}

// Write sends bytes to the client. With a stream idle timeout, a write the client does
// not take within it fails (a client that stopped reading its response).
func (c *conn) Write(p []byte) (int, error) {
	if c.wd.idle > 0 {
		if d, ok := c.wd.next(); ok {
			_ = c.Conn.SetWriteDeadline(d)
			// An earlier deadline set meanwhile (SetWriteDeadline stores it before
			// setting it) must not stay overwritten by this one.
			if e := c.wd.explicit.Load(); e != 0 && e < d.UnixNano() {
				_ = c.Conn.SetWriteDeadline(time.Unix(0, e))
			}
		}
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline sets a deadline that later writes keep when it is earlier than
// their idle deadline.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines; the write one as SetWriteDeadline does.
func (c *conn) SetDeadline(t time.Time) error {
	c.wd.set(t)
	return c.Conn.SetDeadline(t)
}

// Read gives net/http the verified bytes of the connection. A whole header block is
// released only after the scanner accepted it; body bytes are released as framed.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.ready > 0 {
			n := copy(p, c.buf[c.r:c.r+c.ready])
			c.r += n
			c.ready -= n
			if c.r == c.w {
				c.r, c.w = 0, 0
			}
			return n, nil
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.w > c.r { // an incomplete header block is held: read more behind it
			if err := c.fill(); err != nil {
				return 0, err
			}
			m, rej := c.sc.advance(c.buf[c.r:c.w])
			c.ready = m
			if rej != nil {
				c.w = c.r + m
				c.reject(rej)
			}
			continue
		}
		// Nothing held: read straight into p and hold back only what is not verified.
		n, err := c.Conn.Read(p)
		if n == 0 {
			return 0, err
		}
		m, rej := c.sc.advance(p[:n])
		if rej != nil {
			c.reject(rej)
		} else if m < n {
			c.buf = append(c.holdBuf()[:0], p[m:n]...)
			c.r, c.w = 0, n-m
		}
		if m > 0 {
			return m, nil
		}
	}
}

// reject stops the stream after the verified bytes. A header-block rejection is
// followed by the synthetic request; a body rejection by an error, which makes
// net/http abort the request and close the connection.
func (c *conn) reject(rej *rejection) {
	if c.sc.state != stHead {
		c.bodyRejected.Store(rej)
		c.err = rej
		return
	}
	c.rejected.Store(rej)
	c.buf = append(c.holdBuf()[:c.w], syntheticReject...)
	c.w = len(c.buf)
	c.ready += len(syntheticReject)
	c.err = io.EOF
}

func (c *conn) holdBuf() []byte {
	if c.buf == nil {
		c.buf = make([]byte, 0, initialHoldBytes)
	}
	return c.buf
}

// fill reads more bytes behind the held ones, growing the buffer up to the header
// limit (the scanner rejects a longer block, so the buffer stays bounded).
func (c *conn) fill() error {
	if c.r > 0 {
		c.w = copy(c.buf[:cap(c.buf)], c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == cap(c.buf) {
		grown := make([]byte, c.w, max(2*cap(c.buf), initialHoldBytes))
		copy(grown, c.buf[:c.w])
		c.buf = grown
	}
	c.buf = c.buf[:cap(c.buf)]
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	c.buf = c.buf[:c.w]
	if n > 0 {
		return nil
	}
	return err
}

// CloseWrite half-closes the connection when the transport supports it, so net/http
// can let a client read the final response before the socket is closed.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection once and forgets it in the listener.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		if c.ln != nil {
			c.ln.remove(c)
		}
	})
	return c.closeErr
}

type connKey struct{}

// connFrom returns the scanned connection a request arrived on, or nil when the
// handler is served by another server.
func connFrom(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

// listener wraps accepted connections in conn and tracks them, so connections that
// outlive http.Server.Shutdown (hijacked upgrades) can be drained and closed.
type listener struct {
	net.Listener
	lim  scanLimits
	idle time.Duration // stream idle timeout for writes to clients; 0: none

	mu    sync.Mutex
	conns map[*conn]struct{}
	empty chan struct{} // closed when conns becomes empty; nil until waitEmpty
}

func newListener(ln net.Listener, lim scanLimits, idle time.Duration) *listener {
	return &listener{Listener: ln, lim: lim, idle: idle, conns: make(map[*conn]struct{})}
}

// Accept returns the next connection, wrapped for scanning.
func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, ln: l, sc: scanner{lim: l.lim}}
	c.wd.idle = l.idle
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return c, nil
}

func (l *listener) remove(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	if len(l.conns) == 0 && l.empty != nil {
		close(l.empty)
		l.empty = nil
	}
	l.mu.Unlock()
}

// waitEmpty returns a channel closed once no tracked connection is left.
func (l *listener) waitEmpty() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	if len(l.conns) == 0 {
		close(ch)
		return ch
	}
	if l.empty != nil {
		return l.empty
	}
	l.empty = ch
	return ch
}

// closeAll closes every tracked connection.
func (l *listener) closeAll() {
	l.mu.Lock()
	cs := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}
