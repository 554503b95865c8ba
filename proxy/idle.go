package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// The stream idle timeout bounds every read and write of an exchange that waits on a
// peer: a client that stops sending its request body (Slowloris on the body, which
// ReadHeaderTimeout does not cover) or stops reading its response, and an upstream
// that stops sending its response or reading the request body. Without it each such
// peer holds a goroutine and an upstream connection for as long as it likes.
// Deadlines are per call, so a slow peer that keeps making progress is not cut off;
// waiting for the upstream's response head stays ResponseHeaderTimeout's job.

// refBodyTimeout answers a client that sent nothing of its request body for the idle
// timeout.
var refBodyTimeout = &rejection{408, "body.timeout", "request body timed out"}

// idleBody bounds each read of a request body by the connection's read deadline. The
// deadline is cleared when the body ends or fails: net/http's background read after
// the body (which watches for the client going away while the upstream answers) must
// not inherit it, or a slow upstream would cancel the request.
type idleBody struct {
	io.ReadCloser
	c       *conn
	timeout time.Duration
	ended   atomic.Bool // the body hit EOF or failed: its deadline is settled
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.c.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays expired, so nothing reads this connection again
		// (net/http would try to drain the rest of the body). Recorded on the
		// connection too: net/http cancels the request when a read fails, so the
		// transport may report only the cancellation.
		b.ended.Store(true)
		b.c.bodyRejected.Store(refBodyTimeout)
		return n, refBodyTimeout
	case err != nil:
		b.ended.Store(true)
		_ = b.c.SetReadDeadline(time.Time{})
	}
	return n, err
}

// boundDrain runs when the handler returns: net/http drains a body the handler did
// not finish (before or after the answer), and that read gets the deadline too,
// unless the body already settled its own.
func (b *idleBody) boundDrain() {
	if !b.ended.Load() {
		_ = b.c.SetReadDeadline(time.Now().Add(b.timeout))
	}
}

// renewal decides when an idle deadline is renewed. Setting a deadline costs about
// 250 ns (a runtime timer change) and would happen several times per request, so a
// deadline set less than idle/64 ago is kept: each read or write still gets at least
// 63/64 of the timeout.
type renewal struct {
	idle time.Duration
	last atomic.Int64 // UnixNano of the last renewal; 0: none
}

// due returns the deadline for an operation starting now, and false when the one in
// place is recent enough.
func (r *renewal) due() (time.Time, bool) {
	now := time.Now()
	n := now.UnixNano()
	if n-r.last.Load() < int64(r.idle>>6) {
		return time.Time{}, false
	}
	r.last.Store(n)
	return now.Add(r.idle), true
}

// writeDeadlines gives each write to a client the idle deadline, or a deadline set
// explicitly when that is earlier (the WebSocket close handshake bounds its last
// write that way).
type writeDeadlines struct {
	renewal
	explicit atomic.Int64 // UnixNano of the deadline set through SetWriteDeadline; 0: none
}

// next returns the deadline to set for a write starting now, and false when the one
// in place stands.
func (w *writeDeadlines) next() (time.Time, bool) {
	e := w.explicit.Load()
	if e == 0 {
		return w.due()
	}
	d := time.Now().Add(w.idle)
	if e < d.UnixNano() {
		d = time.Unix(0, e)
	}
	return d, true
}

// set records a deadline set explicitly.
func (w *writeDeadlines) set(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	w.explicit.Store(ns)
	w.last.Store(0) // the next write sets its own deadline again
}

// upstreamConn is a connection to the upstream whose reads and writes each get a
// deadline of the larger of the idle timeout and the response header timeout (so
// waiting for a response head stays that timeout's). After an upgrade only writes
// keep theirs: an idle WebSocket is not a stalled exchange, an upstream that does not
// take what it is sent is. A write renews the read deadline too: the transport's reader may have
// been waiting since the connection went idle in the pool, and the answer to what is
// written now gets the whole timeout.
type upstreamConn struct {
	net.Conn
	renewal
	upgraded atomic.Bool
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	c.renew()
	return c.Conn.Read(p)
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.upgraded.Load() {
		// An idle WebSocket has no write pending; a write the upstream does not
		// take is a stall all the same.
		if d, ok := c.due(); ok {
			_ = c.Conn.SetWriteDeadline(d)
		}
	} else {
		c.renew()
	}
	return c.Conn.Write(p)
}

func (c *upstreamConn) renew() {
	if c.upgraded.Load() {
		return
	}
	if d, ok := c.due(); ok {
		_ = c.Conn.SetDeadline(d)
	}
}

// upgrade lifts the read deadline from a connection that switched protocols.
func (c *upstreamConn) upgrade() {
	c.upgraded.Store(true)
	c.last.Store(0) // the next write sets its own deadline
	_ = c.Conn.SetDeadline(time.Time{})
}

// upgradeable returns the upstreamConn under c (a TLS connection's too), or nil.
func upgradeable(c net.Conn) *upstreamConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	uc, _ := c.(*upstreamConn)
	return uc
}

// CloseWrite half-closes the connection: ReverseProxy forwards a client's half-close
// of an upgraded connection through it, and tears the tunnel down when it fails.
func (c *upstreamConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
