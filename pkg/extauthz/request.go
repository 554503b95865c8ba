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
	// errTooManyHeaders refuses a request with more than maxHeaders headers.
	errTooManyHeaders = errors.New("check request carries more than 1024 headers")
)

// checkState is the pooled per-Check working set: the engine request and the backing
// array its single-valued headers slice into, so translating a CheckRequest does not
// allocate a slice per header.
type checkState struct {
	req engine.Request
	// vals backs the one-element value slices of req.Header.
	vals []string
	// view is the request as read from the CheckRequest (decoded message or wire).
	view checkView
	// wire is a reusable copy of the CheckRequest's wire bytes (decodeCheckView).
	wire []byte
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
	st.view.reset()
	if cap(st.wire) > maxPooledBody {
		st.wire = nil
	}
	st.wire = st.wire[:0]
	clear(st.vals[:cap(st.vals)])
	st.vals = st.vals[:0]
	if cap(st.body) > maxPooledBody {
		st.body = nil
	}
	st.body = st.body[:0]
	st.generatedID = false
}

// requestFromCheck translates Envoy's CheckRequest into st.req (through st.view, as
// requestFromView).
func requestFromCheck(st *checkState, cr *authv3.CheckRequest, trusted []netip.Prefix, now func() time.Time) error {
	viewFromCheck(&st.view, cr)
	return requestFromView(st, trusted, now)
}

// requestFromView translates st.view, what Envoy's CheckRequest says, into st.req. It
// is the inverse of checkResponse and keeps Envoy types out of the engine. The rules:
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
func requestFromView(st *checkState, trusted []netip.Prefix, now func() time.Time) error {
	r, v := &st.req, &st.view
	if v.overflow {
		r.ID = telemetry.RequestID("")
		st.generatedID = true
		return errTooManyHeaders
	}
	if r.Header == nil {
		r.Header = make(http.Header, 16)
	}
	st.fillHeaders()
	inbound := ""
	if h := r.Header["X-Request-Id"]; len(h) > 0 {
		inbound = h[0]
	}
	r.ID = telemetry.RequestID(inbound)
	st.generatedID = r.ID != inbound
	r.Route = v.routeExt
	if r.Route == "" {
		r.Route = v.routeMeta
	}
	if v.timeSet {
		r.Received = time.Unix(v.seconds, int64(v.nanos)).UTC()
	} else {
		r.Received = now()
	}
	fillPeer(r, v, trusted)
	if !v.hasHTTP {
		return errNoHTTP
	}
	r.Method = v.method
	r.Host = v.host
	r.Scheme = v.scheme
	st.fillBody()
	raw := v.path
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
func (st *checkState) fillHeaders() {
	hdr := st.req.Header
	if hm := st.view.headerMap; len(hm) > 0 {
		for _, hv := range hm {
			k := canonicalKey(hv.key)
			hdr[k] = append(hdr[k], hv.value)
		}
		return
	}
	m := st.view.headers
	if cap(st.vals) < len(m) {
		st.vals = make([]string, 0, len(m))
	}
	vals := st.vals[:len(m)]
	i := 0
	for _, kv := range m {
		k, v := kv.key, kv.value
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

// fillBody sets Body, HasBody and BodyTruncated (see requestFromView).
func (st *checkState) fillBody() {
	r, h := &st.req, &st.view
	partial, buffered := "", false
	if v := r.Header[partialBodyHeader]; len(v) > 0 {
		partial, buffered = v[0], true
	}
	switch {
	case len(h.rawBody) > 0:
		r.Body = h.rawBody
	case h.body != "":
		st.body = append(st.body[:0], h.body...)
		r.Body = st.body
	}
	r.BodyTruncated = strings.EqualFold(strings.TrimSpace(partial), "true")
	r.HasBody = len(r.Body) > 0 || buffered || declaredEmpty(r.Header, h.protocol)
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
func fillPeer(r *engine.Request, v *checkView, trusted []netip.Prefix) {
	if a, err := netip.ParseAddr(v.source); err == nil {
		r.Peer.Direct = a.Unmap()
	}
	r.Peer.Principal = v.principal
	r.Peer.TLS = r.Peer.Principal != "" || v.tls
	if r.Peer.Direct.IsValid() {
		r.Peer.IP = engine.ClientIP(r.Peer.Direct, r.Header["X-Forwarded-For"], trusted)
	}
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
