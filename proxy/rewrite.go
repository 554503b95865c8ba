package proxy

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/pkg/engine"
)

// clientIPHeaders claim a client address or an original URL. Frameworks believe them,
// so they pass only from a trusted proxy (PROXY.md §6).
var clientIPHeaders = [...]string{
	"X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
	"Fastly-Client-Ip", "X-Original-Forwarded-For", "X-Original-Url", "X-Rewrite-Url",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Scheme",
	"X-Forwarded-Ssl", "X-Url-Scheme", "Front-End-Https",
}

// methodOverrideHeaders make some frameworks treat a request as another method; they
// are always stripped so policy and upstream agree on the method (PROXY.md §13).
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// rewrite builds the upstream request. ReverseProxy has already removed hop-by-hop
// headers (and those named in Connection) and the inbound Forwarded/X-Forwarded-*
// headers, so everything written here reaches the upstream (PROXY.md §5).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	x := exchangeFrom(pr.In.Context())
	if x == nil { // not reached through ServeHTTP: send nowhere
		out.URL.Host = ""
		return
	}
	out.URL.Path, out.URL.RawPath = x.req.Path, x.fwdRawPath
	pr.SetURL(p.o.Upstream)
	if !p.o.SendUpstreamHost {
		out.Host = pr.In.Host
	}
	h := out.Header
	stripSpoofable(h, p.identityPrefix())
	for _, k := range methodOverrideHeaders {
		delete(h, k)
	}
	if !x.trusted {
		for _, k := range clientIPHeaders {
			delete(h, k)
		}
	}
	p.setForwarded(h, x, pr.In)
	h["X-Request-Id"] = x.value(valRequestID)
	p.applyOps(out, x)
	out.Trailer = nil // request trailers never reach the upstream (PROXY.md §15)
}

func (p *Proxy) identityPrefix() string {
	if t := p.eng.Table(); t != nil {
		return t.IdentityPrefix()
	}
	return engine.DefaultIdentityPrefix
}

// stripSpoofable deletes every header whose name starts with the lowercase identity
// prefix, ignoring ASCII case (the engine already did so on the inbound request; this
// keeps the upstream request clean even if the table changed in between), and every
// header whose name contains an underscore: CGI-style stacks (PHP, WSGI, Rack) map
// "X_Portcullis_Subject" and "X-Portcullis-Subject" to the same variable, so an
// underscore spelling would smuggle an identity or X-Forwarded-For past the checks
// (nginx drops them by default for the same reason).
func stripSpoofable(h http.Header, prefix string) {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 ||
			len(k) >= len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) {
			delete(h, k)
		}
	}
}

// setForwarded writes X-Forwarded-For (replaced, never appended to an untrusted value),
// X-Forwarded-Host and X-Forwarded-Proto.
func (p *Proxy) setForwarded(h http.Header, x *exchange, in *http.Request) {
	x.vals[valForwardedFor] = x.directIP
	x.vals[valForwardedHost] = in.Host
	x.vals[valForwardedProto] = x.req.Scheme
	if x.trusted {
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			x.vals[valForwardedHost] = v
		}
		x.vals[valForwardedFor] = forwardedChain(x.req.Peer.Direct, in.Header["X-Forwarded-For"], p.o.TrustedProxies)
	}
	if x.vals[valForwardedFor] != "" {
		h["X-Forwarded-For"] = x.value(valForwardedFor)
	}
	h["X-Forwarded-Host"] = x.value(valForwardedHost)
	h["X-Forwarded-Proto"] = x.value(valForwardedProto)
}

// forwardedChain returns the X-Forwarded-For value for a request from a trusted peer:
// the hops from the resolved client (as engine.ClientIP finds it) to the peer, in
// order. Entries left of the client were written by the client and are dropped.
func forwardedChain(peer netip.Addr, xff []string, trusted []netip.Prefix) string {
	rev := append(make([]string, 0, 4), peer.String())
	engine.WalkForwardedFor(xff, func(hop netip.Addr) bool {
		rev = append(rev, hop.String())
		return engine.IsTrusted(hop, trusted)
	})
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return strings.Join(rev, ", ")
}

// applyOps applies the decision's upstream mutations: Set in order (the first entry of
// a name overwrites, later ones append), then Remove, then RemoveQuery.
func (p *Proxy) applyOps(out *http.Request, x *exchange) {
	h, ops := out.Header, &x.dec.Upstream
	for i, s := range ops.Set {
		k := p.names.canonical(s.Name)
		if seenBefore(ops.Set[:i], s.Name) {
			h[k] = append(h[k], s.Value)
		} else {
			x.vals[valsFixed+i] = s.Value
			h[k] = x.value(valsFixed + i)
		}
	}
	for _, name := range ops.Remove {
		delete(h, p.names.canonical(name))
	}
	if len(ops.RemoveQuery) > 0 && out.URL.RawQuery != "" {
		out.URL.RawQuery = removeQuery(out.URL.RawQuery, ops.RemoveQuery)
	}
}

func seenBefore(set []engine.HeaderValue, name string) bool {
	for _, s := range set {
		if s.Name == name {
			return true
		}
	}
	return false
}

// removeQuery drops the pairs whose decoded name is in names, keeping every other pair
// byte for byte and in order.
func removeQuery(raw string, names []string) string {
	var b strings.Builder
	for pair := range strings.SplitSeq(raw, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil && containsString(names, k) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// modifyResponse replaces the upstream's X-Request-Id with the proxy's, adds the
// decision's response headers, and closes the client connection after a refused
// upgrade: the raw scanner stopped framing that connection at the upgrade request.
func (p *Proxy) modifyResponse(res *http.Response) error {
	delete(res.Header, "X-Request-Id")
	x := exchangeFrom(res.Request.Context())
	if x == nil {
		return nil
	}
	x.setResponseHeaders(res.Header)
	if res.StatusCode != http.StatusSwitchingProtocols && x.upgrade {
		res.Header["Connection"] = []string{"close"}
	}
	if res.StatusCode == http.StatusSwitchingProtocols && x.upstreamConn != nil {
		x.upstreamConn.upgrade()
	}
	return nil
}

// setResponseHeaders puts the proxy's X-Request-Id and the decision's response headers
// on h, the header of the answer the client gets (the upstream's, or an error's).
func (x *exchange) setResponseHeaders(h http.Header) {
	h["X-Request-Id"] = x.value(valRequestID)
	addHeaders(h, x.dec.Response)
}

// bodyRejection returns the framing rejection the raw scanner met in r's body, if
// that is why streaming it failed: from the error itself, or from the connection when
// net/http reported the failed read only as a canceled request (a refused trailer).
func bodyRejection(r *http.Request, err error) *rejection {
	var rej *rejection
	if errors.As(err, &rej) {
		return rej
	}
	if c := connFrom(r.Context()); c != nil {
		return c.bodyRejected.Load()
	}
	return nil
}

// proxyError answers when the upstream could not be reached or did not answer in time,
// or when streaming the request to it failed on the client's side (a body over the
// limit, framing the raw scanner refused).
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason, msg := http.StatusBadGateway, "upstream.unavailable", "upstream unavailable"
	var tooLarge *http.MaxBytesError
	framing := bodyRejection(r, err)
	var ne net.Error
	switch {
	case framing != nil:
		// The raw scanner refused the client's body framing while it streamed to the
		// upstream: the client's fault, not the upstream's.
		status, reason, msg = framing.status, framing.reason, framing.message
	case errors.As(err, &tooLarge):
		status, reason, msg = refBodyTooLarge.status, refBodyTooLarge.reason, refBodyTooLarge.message
	case errors.Is(err, context.Canceled):
		reason, msg = "request.canceled", "request canceled"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		status, reason, msg = http.StatusGatewayTimeout, "upstream.timeout", "upstream timed out"
	}
	if reason != "request.canceled" && framing == nil {
		if ce := p.o.Logger.Check(zap.WarnLevel, "upstream request failed"); ce != nil {
			ce.Write(zap.String("reason", reason), zap.String("upstream", p.upstream), zap.Error(err))
		}
	}
	h := w.Header()
	id := ""
	if x := exchangeFrom(r.Context()); x != nil {
		id = x.req.ID
		x.setResponseHeaders(h)
		if x.upgrade {
			h["Connection"] = []string{"close"}
		}
	}
	if framing != nil || tooLarge != nil {
		// The rest of the body cannot be read: net/http must not try to drain it
		// before answering (it would wait on a stalled client).
		h["Connection"] = []string{"close"}
	}
	writeJSONError(w, status, msg, reason, id)
}

// headerNames caches canonical forms of the lowercase header names decisions set, so
// the hot path does not allocate for them. The map is copied on write and bounded.
type headerNames struct {
	m  atomic.Pointer[map[string]string]
	mu sync.Mutex
}

const maxCachedHeaderNames = 1024

func (c *headerNames) canonical(lower string) string {
	if m := c.m.Load(); m != nil {
		if k, ok := (*m)[lower]; ok {
			return k
		}
	}
	k := http.CanonicalHeaderKey(lower)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= maxCachedHeaderNames {
		return k
	}
	next := make(map[string]string, 8)
	if old != nil {
		for a, b := range *old {
			next[a] = b
		}
	}
	next[lower] = k
	c.m.Store(&next)
	return k
}

// copyBuffers lends ReverseProxy its 32 KiB copy buffers instead of allocating one per
// response.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

const copyBufferBytes = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferBytes]byte); ok {
		return v[:]
	}
	return make([]byte, copyBufferBytes)
}

// Put keeps buf through a pointer to its array, so pooling it does not allocate.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferBytes {
		b.p.Put((*[copyBufferBytes]byte)(buf[:copyBufferBytes]))
	}
}

func newStdLog(l *zap.Logger) *log.Logger { return zap.NewStdLog(l.Named("reverseproxy")) }
