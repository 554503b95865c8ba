package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"go.uber.org/zap"
)

// Serve runs the proxy on ln until ctx is cancelled, then drains: it stops accepting,
// lets in-flight requests finish within Options.ShutdownTimeout, waits the rest of that
// budget for upgraded (WebSocket) connections, and closes whatever is left. Every
// accepted connection goes through the raw scanner. Serve returns nil after a drain
// that finished in time.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	sl := newListener(ln, scanLimits{maxHeaderBytes: p.o.MaxHeaderBytes, maxHeaderCount: p.o.MaxHeaderCount}, p.o.StreamIdleTimeout)
	srv := p.server()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sl) }()
	select {
	case err := <-errc:
		sl.closeAll()
		return fmt.Errorf("proxy: serve: %w", err)
	case <-ctx.Done():
	}
	return p.drain(srv, sl, errc)
}

// server returns the HTTP/1 server with the configured limits.
func (p *Proxy) server() *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true) // no h2c, no prior-knowledge HTTP/2 on a plain listener
	return &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.o.ReadHeaderTimeout,
		IdleTimeout:       p.o.IdleTimeout,
		MaxHeaderBytes:    p.o.MaxHeaderBytes,
		Protocols:         &protocols,
		// net/http answers "OPTIONS *" itself unless told not to, without the handler
		// and without closing the connection; every request must reach the handler (a
		// decision, a log line, and the close the raw scanner relies on after an
		// upgrade request that does not switch).
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     zap.NewStdLog(p.o.Logger.Named("http")),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := c.(*conn); ok {
				return context.WithValue(ctx, connKey{}, sc)
			}
			return ctx
		},
	}
}

// drain shuts srv down within the shutdown budget and waits for Serve to return.
func (p *Proxy) drain(srv *http.Server, sl *listener, errc <-chan error) error {
	dctx, cancel := context.WithTimeout(context.Background(), p.o.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(dctx)
	if err == nil {
		// Shutdown does not track hijacked connections: give upgraded ones the rest
		// of the budget.
		select {
		case <-sl.waitEmpty():
		case <-dctx.Done():
		}
	} else {
		_ = srv.Close()
	}
	sl.closeAll()
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("proxy: drain: %w", err)
	}
	return nil
}
