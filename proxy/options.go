package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConnsPerHost   = 256
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	DefaultMaxHeaderBytes        = 60 << 10 // like Envoy
	DefaultMaxHeaderCount        = 100
	DefaultShutdownTimeout       = 30 * time.Second
	DefaultStreamIdleTimeout     = 5 * time.Minute // Envoy's stream_idle_timeout
)

// Options configure a Proxy. Only Engine and Upstream are required.
type Options struct {
	// Engine decides every request.
	Engine *engine.Engine
	// Upstream is the service behind the proxy (scheme http or https, host, optional
	// base path).
	Upstream *url.URL
	// SendUpstreamHost sends the upstream URL's host as Host. By default the upstream
	// sees the client's Host, the same authority host rules were evaluated against.
	SendUpstreamHost bool

	// Transport carries requests upstream. Nil: an http.Transport built from the pool
	// settings below (no environment proxy, no transparent compression).
	Transport                 http.RoundTripper
	DialTimeout               time.Duration // default 5s
	ResponseHeaderTimeout     time.Duration // default 60s; exceeded: 504
	IdleConnTimeout           time.Duration // default 90s
	MaxIdleConnsPerHost       int           // default 256 (Go's default of 2 halves throughput under load)
	DisableUpstreamKeepAlives bool

	// TrustedProxies are the hops whose X-Forwarded-For, X-Forwarded-Proto,
	// X-Forwarded-Host and client-IP headers are believed.
	TrustedProxies []netip.Prefix

	// Server limits (Serve).
	ReadHeaderTimeout time.Duration // default 10s
	IdleTimeout       time.Duration // default 120s
	ShutdownTimeout   time.Duration // graceful drain budget, default 30s
	MaxHeaderBytes    int           // request line + header block, default 60 KiB (431 above)
	MaxHeaderCount    int           // header field lines, default 100 (431 above)
	// MaxBodyBytes caps every request body (413 above); 0 means no global cap. Routes
	// whose stages read the body are also bounded by their own body limit.
	MaxBodyBytes int64
	// StreamIdleTimeout bounds each read and write that waits on a peer during an
	// exchange: the client sending its request body or taking its response (one
	// write, at most 32 KiB). A client body that stalls gets 408 body.timeout; any
	// other stall ends the exchange and its connections. The upstream side (taking
	// the request body, sending the response body) gets the larger of this and
	// ResponseHeaderTimeout, so waiting for a response head stays
	// ResponseHeaderTimeout's. After an upgrade only reads are exempt (an idle
	// WebSocket is not a stalled one). A body the handler never reads (a denied
	// request) is drained by net/http under the same bound. Default 5m; negative:
	// none.
	StreamIdleTimeout time.Duration

	// WebSocket configures upgraded connections.
	WebSocket WebSocketOptions

	Log    *telemetry.DecisionLog // one line per decision; nil: none
	Audit  *telemetry.Audit       // one event per deny; nil: none
	Logger *zap.Logger            // proxy errors; nil: discarded
}

// WebSocketOptions configure upgrade handling. WebSocket is the only protocol a client
// may upgrade to (h2c and others are refused); the upgrade request is decided like any
// other before the upstream sees it. Afterwards, with no message limit set, the
// connection is a byte pipe. With a limit, client frames are checked one header at a
// time (RFC 6455; payloads stream through unbuffered): a message over MaxMessageBytes
// or over the rate closes the connection with status 1008, a frame breaking the
// protocol (unmasked, reserved opcode or bits, bad fragmentation, oversized control
// frame) with 1002; the Close frame goes to the client and to the upstream, then both
// connections close. Upstream-to-client frames pass unchecked.
type WebSocketOptions struct {
	// Disabled refuses every upgrade with 400.
	Disabled bool
	// MaxMessageBytes caps the payload bytes of one client message, over all its
	// frames (on the wire: compressed size under permessage-deflate); 0: no cap.
	MaxMessageBytes int64
	// MessagesPerSecond limits client messages (data messages, pings and pongs) per
	// connection with a token bucket of Burst; 0: no limit.
	MessagesPerSecond float64
	// Burst is the bucket size; 0: MessagesPerSecond rounded up (at least 1).
	Burst int
	// OnClose is called once for every connection closed by a limit, with the reason
	// "size", "rate" or "protocol" (for metrics). It must not block.
	OnClose func(reason string)
}

// withDefaults returns o with zero fields defaulted, or an error for invalid values.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Engine == nil {
		errs = append(errs, errors.New("engine is required"))
	}
	if o.Upstream == nil || (o.Upstream.Scheme != "http" && o.Upstream.Scheme != "https") || o.Upstream.Host == "" {
		errs = append(errs, errors.New("upstream must be an http or https URL with a host"))
	}
	if o.MaxBodyBytes < 0 || o.MaxHeaderBytes < 0 || o.MaxHeaderCount < 0 || o.MaxIdleConnsPerHost < 0 {
		errs = append(errs, errors.New("limits must not be negative"))
	}
	if err := o.WebSocket.check(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("proxy options: %w", errors.Join(errs...))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	def(&o.IdleConnTimeout, DefaultIdleConnTimeout)
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	def(&o.StreamIdleTimeout, DefaultStreamIdleTimeout)
	if o.StreamIdleTimeout < 0 {
		o.StreamIdleTimeout = 0
	}
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxHeaderCount == 0 {
		o.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// newTransport builds the upstream connection pool (PROXY.md §17).
func (o *Options) newTransport() *http.Transport {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	idleConn := o.IdleConnTimeout
	if idle := o.StreamIdleTimeout; idle > 0 {
		// A pooled connection keeps a read pending under the idle deadline: the pool
		// must drop it well before that deadline fires, or a request put on it at that
		// moment fails (the transport does not retry a request with a body).
		idleConn = min(idleConn, max(idle, o.ResponseHeaderTimeout)/2)
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &upstreamConn{Conn: c, renewal: renewal{idle: max(idle, o.ResponseHeaderTimeout)}}, nil
		}
	}
	return &http.Transport{
		Proxy:                  nil, // a sidecar never follows HTTP_PROXY
		DialContext:            dial,
		MaxIdleConns:           0, // no global cap; per host below
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		IdleConnTimeout:        idleConn,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		DisableKeepAlives:      o.DisableUpstreamKeepAlives,
		DisableCompression:     true, // forward bytes as they are
		MaxResponseHeaderBytes: 1 << 20,
	}
}
