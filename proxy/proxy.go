// Package proxy is Portcullis's reverse-proxy front-end: every request is decided by the
// engine before httputil.ReverseProxy (with Rewrite, never Director) forwards it to the
// one upstream service.
//
// What the upstream receives (the contract upstream apps code against):
//   - the normalized path: the percent-encoded form of engine.CleanPath's result, the
//     same resource policy matched (dot segments removed, slash runs collapsed,
//     unreserved escapes decoded; encoded slashes, backslashes, NUL and ';' refused);
//   - the client's Host (unless Options.SendUpstreamHost);
//   - X-Forwarded-For replaced by the resolved chain (only the TCP peer, or the
//     client-to-peer chain through configured trusted proxies), X-Forwarded-Host and
//     X-Forwarded-Proto set by the proxy;
//   - no inbound header carrying the identity prefix, no header with '_' in its name
//     (CGI-style stacks read it as the hyphenated one), no client-IP or URL-override
//     header unless the peer is a trusted proxy, no method-override header, no
//     request trailers; the decision's identity headers and x-request-id, written after
//     hop-by-hop removal so a client's Connection header cannot delete them.
//
// Serve adds the raw-byte hardening of PROXY.md (see conn and scanner): requests with
// both Content-Length and Transfer-Encoding, obs-fold, bare LF, oversized header
// blocks and too many header lines are answered before net/http parses them.
package proxy

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// frontend names this front-end in decision logs and audit events.
const frontend = "proxy"

// Proxy is the reverse-proxy front-end. It is an http.Handler; Serve runs it on a
// listener with the configured limits. It is safe for concurrent use.
type Proxy struct {
	o        Options
	eng      *engine.Engine
	rp       *httputil.ReverseProxy
	upstream string // Options.Upstream, for logs
	names    headerNames
	pool     sync.Pool  // *exchange
	ws       *webSocket // WebSocket message limits; nil: upgraded connections are pipes
}

// exchange is the per-request state: the engine's view, the decision and what the
// rewrite needs. Exchanges are pooled; nothing may keep one after ServeHTTP returns.
type exchange struct {
	req        engine.Request
	dec        engine.Decision
	fwdRawPath string // encoded path to forward when it differs from req.Path
	directIP   string // the TCP peer's address as text, for X-Forwarded-For
	// vals backs every header value the proxy writes for this request, one allocation
	// instead of one per header (fresh per request: net/http writes response headers
	// after ServeHTTP returns, so it must not come from the pool).
	vals    []string
	trusted bool // the TCP peer is a configured trusted proxy
	upgrade bool // the request carries Upgrade: the connection ends unless it switches
	// upstreamConn carries an upgrade request (nil otherwise, or with another transport).
	upstreamConn *upstreamConn
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// New returns a Proxy for o. It fails when Engine or Upstream is missing or a limit is
// negative.
func New(o Options) (*Proxy, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxy{o: o, eng: o.Engine, upstream: o.Upstream.String(), ws: newWebSocket(&o.WebSocket, o.Logger)}
	p.pool.New = func() any { return new(exchange) }
	transport := o.Transport
	if transport == nil {
		transport = o.newTransport()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.proxyError,
		BufferPool:     copyBuffers,
		ErrorLog:       newStdLog(o.Logger),
	}
	return p, nil
}

// ServeHTTP decides the request and, when allowed, proxies it upstream.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := p.pool.Get().(*exchange)
	defer p.release(x)
	p.fill(x, r)
	hasBody := r.Body != nil && r.Body != http.NoBody
	var ib *idleBody
	if c := connFrom(r.Context()); c != nil && p.o.StreamIdleTimeout > 0 && hasBody {
		ib = &idleBody{ReadCloser: r.Body, c: c, timeout: p.o.StreamIdleTimeout}
		defer ib.boundDrain()
	}
	if rej := p.refuse(r, x); rej != nil {
		p.reject(w, x, rej)
		return
	}
	limit := p.eng.Prepare(&x.req)
	if limit > 0 && expectsContinue(r) {
		// Reading the body sends the 100 Continue: decide what the head settles first
		// (PROXY.md §14), so a request without credentials never uploads its body.
		if d, ok := p.eng.DecideWithoutBody(r.Context(), &x.req); ok {
			x.dec = d
			p.record(x)
			p.writeDecision(w, x)
			return
		}
	}
	if hasBody {
		// The body's wrappers go on a copy of the request: after the handler,
		// net/http looks at the request's own Body to decide whether to drain it, and
		// draining a wrapper sends the 100 Continue a denied request must never get.
		r = r.WithContext(r.Context())
		if ib != nil {
			r.Body = ib
		}
		if p.o.MaxBodyBytes > 0 {
			r.Body = http.MaxBytesReader(w, r.Body, p.o.MaxBodyBytes)
		}
	}
	if limit > 0 {
		if rej := p.readBody(r, &x.req, limit); rej != nil {
			p.reject(w, x, rej)
			return
		}
	}
	x.dec = p.eng.Decide(r.Context(), &x.req)
	p.record(x)
	if !x.dec.Allow {
		p.writeDecision(w, x)
		return
	}
	if expectsContinue(r) {
		// The proxy answers Expect itself, as Envoy does by default
		// (proxy_100_continue: false): net/http sends the client its 100 when the
		// transport first reads the body. Forwarded, it raced the upstream's own 100,
		// relayed as a second one, and the transport held the body back waiting for it.
		delete(r.Header, "Expect")
	}
	x.vals = make([]string, valsFixed+len(x.dec.Upstream.Set))
	x.vals[valRequestID] = x.req.ID
	// X-Request-Id and the decision's response headers go on the upstream's response
	// (modifyResponse) or the error answer (proxyError), not on w now: ReverseProxy
	// relays an upstream 1xx (100 Continue, 103 Early Hints) through w's header map and
	// then clears it, which dropped them from the final response.
	switch {
	case x.upgrade && p.ws != nil:
		w = p.ws.wrap(w, r, x)
	case x.upgrade:
		w = pipeWriter{w}
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, x)
	if x.upgrade && p.o.StreamIdleTimeout > 0 {
		// The upstream connection of a switch leaves the idle timeout (modifyResponse).
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { x.upstreamConn = upgradeable(i.Conn) },
		})
	}
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (p *Proxy) release(x *exchange) {
	x.req.Header = nil // the map belongs to the http.Request; Reset would clear it
	x.req.Reset()
	*x = exchange{req: x.req}
	p.pool.Put(x)
}

// fill builds the engine's view of r (everything but the body and the path).
func (p *Proxy) fill(x *exchange, r *http.Request) {
	req := &x.req
	req.ID = telemetry.RequestID(r.Header.Get("X-Request-Id"))
	req.Method = r.Method
	req.Host = r.Host
	req.Header = r.Header
	req.RawQuery = r.URL.RawQuery
	req.Received = time.Now()
	direct, directText := remoteIP(r.RemoteAddr)
	x.directIP = directText
	req.Peer.Direct = direct
	req.Peer.IP = direct
	x.trusted = isTrusted(direct, p.o.TrustedProxies)
	if x.trusted {
		req.Peer.IP = engine.ClientIP(direct, r.Header["X-Forwarded-For"], p.o.TrustedProxies)
	}
	req.Peer.TLS = r.TLS != nil
	req.Peer.Principal = tlsPrincipal(r.TLS)
	req.Scheme = "http"
	switch {
	case r.TLS != nil:
		req.Scheme = "https"
	case x.trusted:
		if v := r.Header.Get("X-Forwarded-Proto"); v == "https" || v == "http" {
			req.Scheme = v
		}
	}
	x.upgrade = len(r.Header["Upgrade"]) > 0
}

// record writes the decision log line and, for a deny, the audit event.
func (p *Proxy) record(x *exchange) {
	if p.o.Log != nil {
		p.o.Log.Log(frontend, &x.req, &x.dec)
	}
	if !x.dec.Allow && p.o.Audit != nil {
		p.o.Audit.Deny(frontend, &x.req, &x.dec)
	}
}

// reject answers a request the front-end refuses before (or instead of) the engine,
// and ends the connection: a client that sends malformed or refused requests (CONNECT
// followed by tunnel bytes, say) gets no second chance on it.
func (p *Proxy) reject(w http.ResponseWriter, x *exchange, rej *rejection) {
	x.dec = engine.Decision{Status: rej.status, Reason: rej.reason, Message: rej.message, DecidedBy: frontend}
	p.record(x)
	w.Header()["Connection"] = []string{"close"}
	p.writeDecision(w, x)
}

// writeDecision writes a deny: the decision's client headers and the JSON error body.
func (p *Proxy) writeDecision(w http.ResponseWriter, x *exchange) {
	h := w.Header()
	addHeaders(h, x.dec.Response)
	if x.upgrade {
		h["Connection"] = []string{"close"}
	}
	writeJSONError(w, x.dec.Status, x.dec.Message, x.dec.Reason, x.req.ID)
}

// Slots of exchange.vals; decision Set values follow valsFixed.
const (
	valRequestID = iota
	valForwardedFor
	valForwardedHost
	valForwardedProto
	valsFixed
)

// value returns slot i of x.vals as a one-element header value whose capacity ends
// there, so an append elsewhere copies instead of overwriting the next slot.
func (x *exchange) value(i int) []string { return x.vals[i : i+1 : i+1] }

// addHeaders adds src's values to dst. A name new to dst shares src's slice, capped so
// later appends copy.
func addHeaders(dst, src http.Header) {
	for k, vs := range src {
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vs...)
		} else {
			dst[k] = vs[:len(vs):len(vs)]
		}
	}
}

// remoteIP parses net/http's RemoteAddr ("ip:port") into the peer address and its
// text (a substring of addr when that is already canonical, so nothing is allocated).
// Anything else gives the zero Addr and "".
func remoteIP(addr string) (netip.Addr, string) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}, ""
	}
	a := ap.Addr()
	if a.Is4() {
		return a, addr[:strings.LastIndexByte(addr, ':')]
	}
	a = a.Unmap()
	return a, a.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
