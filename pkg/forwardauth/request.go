package forwardauth

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// Headers through which reverse proxies describe the original request.
const (
	hdrForwardedMethod = "X-Forwarded-Method" // Traefik, Caddy
	hdrForwardedURI    = "X-Forwarded-Uri"    // Traefik, Caddy
	hdrForwardedHost   = "X-Forwarded-Host"
	hdrForwardedProto  = "X-Forwarded-Proto"
	hdrForwardedFor    = "X-Forwarded-For"
	hdrOriginalURI     = "X-Original-Uri"    // nginx: proxy_set_header X-Original-URI $request_uri
	hdrOriginalMethod  = "X-Original-Method" // nginx: proxy_set_header X-Original-Method $request_method
	hdrRequestID       = "X-Request-Id"
)

// forwardingHeaders are removed from the evaluated request when the peer is not a
// trusted proxy, so no stage can mistake a client's claim for the proxy's.
var forwardingHeaders = []string{
	hdrForwardedMethod, hdrForwardedURI, hdrForwardedHost, hdrForwardedProto,
	hdrOriginalURI, hdrOriginalMethod,
}

var (
	errBadTarget = errors.New("original request target must be an absolute path")
	// errConflict: the request carries both header families for the original method
	// or target, and they disagree.
	errConflict = errors.New("X-Forwarded-Method/Uri and X-Original-Method/URI disagree")
)

// requestFromForward builds the engine request for a forward-auth call r.
//
// When the TCP peer is in trusted (the reverse proxy), the original request is read
// from the proxy's headers: method from X-Forwarded-Method or X-Original-Method, target
// from X-Forwarded-Uri or X-Original-URI (path and query), host from X-Forwarded-Host,
// scheme from X-Forwarded-Proto; each falls back to the forward-auth request itself.
// The client IP is engine.ClientIP(peer, X-Forwarded-For, trusted).
//
// When the peer is not trusted, every one of those headers is ignored and removed: the
// forward-auth request itself is evaluated (its own method, target, Host and TLS state)
// with the peer as client. A forward-auth endpoint is meant to be called by the proxy
// only; this keeps a client that reaches it directly from choosing what is evaluated.
//
// Header is r.Header itself (Decide strips inbound identity headers from it). The
// request id is a well-formed X-Request-Id, else a generated one. fromProxy reports
// whether the peer is trusted.
func requestFromForward(er *engine.Request, r *http.Request, trusted []netip.Prefix) (fromProxy bool, err error) {
	peer := peerAddr(r.RemoteAddr)
	fromProxy = peer.IsValid() && inPrefixes(peer, trusted)
	h := r.Header
	if !fromProxy {
		for _, k := range forwardingHeaders {
			delete(h, k)
		}
	}
	er.Header = h
	er.ID = telemetry.RequestID(h.Get(hdrRequestID))
	er.Method = firstNonEmpty(h.Get(hdrForwardedMethod), h.Get(hdrOriginalMethod), r.Method)
	er.Host = firstNonEmpty(h.Get(hdrForwardedHost), r.Host)
	er.Scheme = "http"
	if r.TLS != nil {
		er.Scheme = "https"
	}
	if p := strings.ToLower(strings.TrimSpace(h.Get(hdrForwardedProto))); p == "http" || p == "https" {
		er.Scheme = p
	}
	er.Peer.Direct = peer
	er.Peer.IP = peer
	er.Peer.TLS = er.Scheme == "https"
	if fromProxy {
		er.Peer.IP = engine.ClientIP(peer, h[hdrForwardedFor], trusted)
	}
	// A proxy sets one family and passes the client's headers through (nginx's
	// auth_request does): a client's X-Forwarded-Uri beside nginx's X-Original-URI
	// would otherwise choose what is evaluated while nginx forwards the real target.
	if conflicting(h, hdrForwardedMethod, hdrOriginalMethod) || conflicting(h, hdrForwardedURI, hdrOriginalURI) {
		return fromProxy, errConflict
	}
	target := firstNonEmpty(h.Get(hdrForwardedURI), h.Get(hdrOriginalURI), r.RequestURI)
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI()
	}
	raw, query, _ := strings.Cut(target, "?")
	er.RawPath, er.RawQuery = raw, query
	if raw == "" || raw[0] != '/' {
		return fromProxy, errBadTarget
	}
	dec, _, err := engine.CleanPath(raw)
	if err != nil {
		return fromProxy, err
	}
	er.Path = dec
	return fromProxy, nil
}

// conflicting reports whether h carries both headers a and b, or either more than
// once, with values that differ.
func conflicting(h http.Header, a, b string) bool {
	va, vb := h[a], h[b]
	if len(va)+len(vb) < 2 {
		return false
	}
	first := append(va[:len(va):len(va)], vb...)
	for _, v := range first[1:] {
		if v != first[0] {
			return true
		}
	}
	return false
}

// readBody reads up to limit bytes of r's body into er. The body counts as present
// (HasBody) only when the call carries one (Content-Length > 0 or chunked), or when the
// call is the evaluated request itself (untrusted peer): a proxy that does not forward
// bodies (nginx auth_request, Traefik without forwardBody) sends none, and an empty
// body must not be mistaken for the original's.
func readBody(er *engine.Request, r *http.Request, limit int64, fromProxy bool) error {
	if limit <= 0 || r.Body == nil {
		return nil
	}
	if r.ContentLength == 0 {
		er.HasBody = !fromProxy
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		b, er.BodyTruncated = b[:limit], true
	}
	er.Body, er.HasBody = b, true
	return nil
}

// peerAddr parses the TCP peer of RemoteAddr ("ip:port"); invalid for anything else.
func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
