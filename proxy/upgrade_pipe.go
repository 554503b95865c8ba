package proxy

import (
	"bufio"
	"net"
	"net/http"
)

// pipeWriter is the ResponseWriter of an upgrade request without message limits. Its
// Hijack hands ReverseProxy a client connection that first yields the bytes net/http
// had already buffered past the upgrade request (a client may send its first frames
// right behind it): ReverseProxy copies only from the connection itself, so those
// bytes were lost. The limits mode keeps them the same way (wsConn.early).
type pipeWriter struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the server's writer (Flush and friends).
func (w pipeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack takes over the client connection, keeping net/http's buffered bytes first.
func (w pipeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	return withEarly(c, brw), brw, nil
}

// withEarly returns c, or c behind the bytes brw had buffered from it (sent before
// the 101: frames all the same).
func withEarly(c net.Conn, brw *bufio.ReadWriter) net.Conn {
	n := brw.Reader.Buffered()
	if n == 0 {
		return c
	}
	early, _ := brw.Reader.Peek(n)
	return &earlyConn{Conn: c, early: append([]byte(nil), early...)}
}

// earlyConn reads early before the connection.
type earlyConn struct {
	net.Conn
	early []byte
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection when it can (ReverseProxy calls it when the
// upstream is done sending).
func (c *earlyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
