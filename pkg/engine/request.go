// Package engine is Portcullis's decision core: the transport-neutral request view,
// the stages that judge it, the route table that picks a policy, and Engine.Decide,
// which turns one Request into one Decision.
//
// It imports the standard library only. Front-ends translate their wire format into a
// Request and a Decision back into their wire format; filters implement the stage
// interfaces; the config compiler builds a RouteTable. Nothing here does I/O.
package engine

import (
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// Request is the read-only, transport-neutral view of one request. Front-ends build it;
// stages must not modify it (Decide itself removes spoofed identity headers from Header
// before any stage runs).
type Request struct {
	// ID is the request id: a well-formed inbound x-request-id, else a generated one.
	ID string
	// Route names the route to use, chosen by the front-end (Envoy context_extensions,
	// RLS domain). Empty means: match by host, path, method and headers.
	Route string

	Method string // case-sensitive, as received
	Scheme string // "http" or "https"
	Host   string // authority without userinfo, as the upstream sees it
	// Path is the normalized path used for matching; RawPath is exactly as received
	// (still percent-encoded). RawQuery excludes the '?'.
	Path, RawPath, RawQuery string

	// Header holds all request headers with every value kept. Keys are in canonical
	// form (http.CanonicalHeaderKey) so Header.Get works.
	Header http.Header

	// Body is the request body, or a prefix of it when BodyTruncated is set. It is nil
	// when the front-end did not read the body (the route needs none, or Envoy sent
	// none). Stages that need the whole body deny when BodyTruncated is true or
	// HasBody is false.
	Body          []byte
	HasBody       bool
	BodyTruncated bool

	Peer     Peer
	Received time.Time

	// RLS only: Envoy's precomputed descriptors.
	Domain      string
	Descriptors []Descriptor
	HitsAddend  uint64

	query     map[string][]string // parsed lazily by Query
	queryDone bool
	prep      prepared // set by Engine.Prepare
}

// Reset clears r for reuse, keeping the Header map (emptied) to save an allocation.
// A front-end that points Header at another owner's map (http.Request.Header) must
// set it to nil before Reset, or that map is cleared too.
func (r *Request) Reset() {
	h := r.Header
	clear(h)
	*r = Request{Header: h}
}

// Peer describes the client after trusted-hop resolution.
type Peer struct {
	// IP is the client address used by rules and limits: the TCP peer, or the right-most
	// untrusted X-Forwarded-For hop when the TCP peer is a configured trusted proxy.
	IP netip.Addr
	// Direct is the TCP peer address the request arrived from (for Envoy: the source
	// address Envoy reports).
	Direct netip.Addr
	// TLS is true when the client connection used TLS.
	TLS bool
	// Principal is the authenticated peer identity from mTLS (URI SAN, DNS SAN or subject),
	// e.g. a SPIFFE ID under Istio. Empty without a verified client certificate.
	Principal string
}

// Descriptor is one Envoy rate limit descriptor: ordered key/value entries, an optional
// limit override and an optional per-descriptor hits addend.
type Descriptor struct {
	Entries    []DescriptorEntry
	Override   *LimitOverride
	HitsAddend uint64 // 0: use the request's
}

// DescriptorEntry is one key/value pair of a Descriptor.
type DescriptorEntry struct{ Key, Value string }

// LimitOverride is Envoy's per-descriptor limit override.
type LimitOverride struct {
	RequestsPerUnit uint32
	Unit            time.Duration
}

// Query returns the parsed query parameters. The map is parsed once per request and
// must not be modified.
func (r *Request) Query() map[string][]string {
	if !r.queryDone {
		r.queryDone = true
		if r.RawQuery != "" {
			// A malformed pair is skipped; the rest stays usable (url.ParseQuery semantics).
			r.query, _ = url.ParseQuery(r.RawQuery)
		}
	}
	return r.query
}

// QueryValue returns the first value of the query parameter name, and whether it exists.
func (r *Request) QueryValue(name string) (string, bool) {
	vs, ok := r.Query()[name]
	if !ok || len(vs) == 0 {
		return "", ok
	}
	return vs[0], true
}
