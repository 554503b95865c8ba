package extauthz

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// Names of the channels through which Envoy tells us the route.
const (
	// RouteExtensionKey is the context_extensions key naming the route (per-route
	// CheckSettings in Envoy's route configuration).
	RouteExtensionKey = "route"
	// MetadataNamespace is the route_metadata_context filter_metadata namespace the
	// control plane writes; its "route" field names the route.
	MetadataNamespace = "portcullis"
)

const partialBodyHeader = "X-Envoy-Auth-Partial-Body"

// Errors of requestFromCheck. The server answers both with a 400 deny.
var (
	errNoHTTP = errors.New("check request carries no http attributes")
)

// checkState is the pooled per-Check working set: the engine request and the backing
// array its single-valued headers slice into, so translating a CheckRequest does not
// allocate a slice per header.
type checkState struct {
	req engine.Request
	// vals backs the one-element value slices of req.Header.
	vals []string
	// body is a reusable copy buffer for string bodies.
	body []byte
	// generatedID is true when req.ID was generated here (no well-formed inbound id).
	generatedID bool
}

// maxPooledBody bounds the body buffer kept across requests.
const maxPooledBody = 64 << 10

// reset clears st for reuse and drops references to the previous request's strings.
func (st *checkState) reset() {
	st.req.Reset()
	clear(st.vals[:cap(st.vals)])
	st.vals = st.vals[:0]
	if cap(st.body) > maxPooledBody {
		st.body = nil
	}
	st.body = st.body[:0]
	st.generatedID = false
}

// requestFromCheck translates Envoy's CheckRequest into st.req. It is the inverse of
// checkResponse and keeps Envoy types out of the engine. The rules:
//
//   - ID: the x-request-id header when well formed, else a generated id
//     (st.generatedID); never CheckRequest's http.id, which is Envoy's stream id.
//   - Path: http.path is the request target with the query; it is split at the first
//     '?'. RawPath keeps the bytes as received, Path is engine.CleanPath's decoded form;
//     an unusable path returns the CleanPath error (answered 400 path.invalid).
//   - Header: the headers map (lowercase keys, duplicates comma-merged by Envoy) or, when
//     Envoy sends header_map (encode_raw_headers), its raw values with duplicates kept.
//     Keys become canonical.
//   - Body: raw_body (pack_as_bytes) is used as is, body is copied. BodyTruncated is
//     "x-envoy-auth-partial-body: true". HasBody is true when Envoy sent body bytes, or
//     sent the partial-body header (it buffered; the body may be empty), or the headers
//     declare an empty body ("Content-Length: 0", or HTTP/1.x with neither
//     Content-Length nor Transfer-Encoding, RFC 9112 §6.3). Otherwise the body is
//     unknown (Envoy did not buffer it) and HasBody is false.
//   - Peer: Direct is source.address (Envoy's view of the downstream, already resolved by
//     its own xff_num_trusted_hops / use_remote_address settings). IP is
//     engine.ClientIP(Direct, X-Forwarded-For, trusted): X-Forwarded-For is read only when
//     Direct is a trusted proxy, from the right. Envoy with use_remote_address appends
//     Direct to X-Forwarded-For itself; that hop is trusted and skipped by the walk.
//     Principal is source.principal (URI SAN, DNS SAN or subject of a verified client
//     certificate); TLS is true when there is a principal or a tls_session.
//   - Route: context_extensions["route"], else route_metadata_context
//     filter_metadata["portcullis"].route.
//   - Received: request.time, else now().
func requestFromCheck(st *checkState, cr *authv3.CheckRequest, trusted []netip.Prefix, now func() time.Time) error {
	r := &st.req
	if r.Header == nil {
		r.Header = make(http.Header, 16)
	}
	attrs := cr.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	st.fillHeaders(h)
	inbound := ""
	if v := r.Header["X-Request-Id"]; len(v) > 0 {
		inbound = v[0]
	}
	r.ID = telemetry.RequestID(inbound)
	st.generatedID = r.ID != inbound
	r.Route = routeOf(attrs)
	if t := attrs.GetRequest().GetTime(); t != nil {
		r.Received = t.AsTime()
	} else {
		r.Received = now()
	}
	fillPeer(r, attrs, trusted)
	if h == nil {
		return errNoHTTP
	}
	r.Method = h.GetMethod()
	r.Host = h.GetHost()
	r.Scheme = h.GetScheme()
	st.fillBody(h)
	raw := h.GetPath()
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, r.RawQuery = raw[:i], raw[i+1:]
	}
	r.RawPath = raw
	dec, _, err := engine.CleanPath(raw)
	if err != nil {
		return err
	}
	r.Path = dec
	return nil
}

// fillHeaders copies Envoy's headers into st.req.Header with canonical keys.
func (st *checkState) fillHeaders(h *authv3.AttributeContext_HttpRequest) {
	hdr := st.req.Header
	if hm := h.GetHeaderMap(); len(hm.GetHeaders()) > 0 {
		for _, hv := range hm.GetHeaders() {
			v := hv.GetValue()
			if len(hv.GetRawValue()) > 0 {
				v = string(hv.GetRawValue())
			}
			k := canonicalKey(hv.GetKey())
			hdr[k] = append(hdr[k], v)
		}
		return
	}
	m := h.GetHeaders()
	if cap(st.vals) < len(m) {
		st.vals = make([]string, 0, len(m))
	}
	vals := st.vals[:len(m)]
	i := 0
	for k, v := range m {
		ck := canonicalKey(k)
		if prev, ok := hdr[ck]; ok { // mixed-case duplicates from a non-Envoy client
			hdr[ck] = append(prev, v)
			continue
		}
		vals[i] = v
		hdr[ck] = vals[i : i+1 : i+1]
		i++
	}
	st.vals = vals
}

// fillBody sets Body, HasBody and BodyTruncated (see requestFromCheck).
func (st *checkState) fillBody(h *authv3.AttributeContext_HttpRequest) {
	r := &st.req
	partial, buffered := "", false
	if v := r.Header[partialBodyHeader]; len(v) > 0 {
		partial, buffered = v[0], true
	}
	switch {
	case len(h.GetRawBody()) > 0:
		r.Body = h.GetRawBody()
	case h.GetBody() != "":
		st.body = append(st.body[:0], h.GetBody()...)
		r.Body = st.body
	}
	r.BodyTruncated = strings.EqualFold(strings.TrimSpace(partial), "true")
	r.HasBody = len(r.Body) > 0 || buffered || declaredEmpty(r.Header, h.GetProtocol())
}

// declaredEmpty reports whether the request has no body by its framing headers:
// "Content-Length: 0", or HTTP/1.x with neither Content-Length nor Transfer-Encoding.
// The size attribute is not used: its proto3 default (0) cannot be told from "empty".
func declaredEmpty(h http.Header, protocol string) bool {
	cl, hasCL := h["Content-Length"]
	if hasCL {
		return len(cl) == 1 && strings.TrimSpace(cl[0]) == "0"
	}
	_, te := h["Transfer-Encoding"]
	return !te && strings.HasPrefix(protocol, "HTTP/1.")
}

// fillPeer sets r.Peer from the source attributes.
func fillPeer(r *engine.Request, attrs *authv3.AttributeContext, trusted []netip.Prefix) {
	src := attrs.GetSource()
	if a, err := netip.ParseAddr(src.GetAddress().GetSocketAddress().GetAddress()); err == nil {
		r.Peer.Direct = a.Unmap()
	}
	r.Peer.Principal = src.GetPrincipal()
	r.Peer.TLS = r.Peer.Principal != "" || attrs.GetTlsSession() != nil
	if r.Peer.Direct.IsValid() {
		r.Peer.IP = engine.ClientIP(r.Peer.Direct, r.Header["X-Forwarded-For"], trusted)
	}
}

// routeOf returns the route named by context_extensions or route metadata ("": match).
func routeOf(attrs *authv3.AttributeContext) string {
	if v := attrs.GetContextExtensions()[RouteExtensionKey]; v != "" {
		return v
	}
	md := attrs.GetRouteMetadataContext().GetFilterMetadata()[MetadataNamespace]
	return md.GetFields()[RouteExtensionKey].GetStringValue()
}

// canonicalKey returns the canonical form of a header name, without allocating for
// the headers Envoy commonly sends.
func canonicalKey(k string) string {
	if c, ok := commonKeys[k]; ok {
		return c
	}
	return http.CanonicalHeaderKey(k)
}

// commonKeys maps lowercase header names (as Envoy sends them) to canonical keys.
var commonKeys = func() map[string]string {
	names := []string{
		":authority", ":method", ":path", ":scheme", "accept", "accept-encoding",
		"accept-language", "authorization", "cache-control", "connection", "content-length",
		"content-type", "cookie", "forwarded", "host", "origin", "pragma", "referer", "te",
		"transfer-encoding", "upgrade", "user-agent", "x-api-key", "x-b3-parentspanid",
		"x-b3-sampled", "x-b3-spanid", "x-b3-traceid", "x-envoy-auth-partial-body",
		"x-envoy-expected-rq-timeout-ms", "x-envoy-internal", "x-envoy-original-path",
		"x-forwarded-client-cert", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
		"x-real-ip", "x-request-id", "traceparent", "tracestate", "content-digest", "digest",
		"signature", "signature-input", "date", "if-none-match", "if-modified-since",
		"x-portcullis-subject", "x-portcullis-auth", "x-portcullis-scopes",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = http.CanonicalHeaderKey(n)
	}
	return m
}()
