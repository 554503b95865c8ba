// Package httpsig signs and verifies HTTP messages with HTTP Message Signatures
// (RFC 9421) and checks body integrity with Content-Digest (RFC 9530).
//
// It works on a transport-neutral Message (method, scheme, authority, raw path and
// query, headers, body), so a proxy can verify what it received without building an
// *http.Request; MessageFromRequest adapts net/http. A Verifier checks a message
// against a Policy (covered components, age, algorithms, tag) with keys found by
// keyid; a Signer signs requests, and Signer.Transport signs every request an
// http.Client sends.
//
// Supported algorithms: hmac-sha256, ed25519, ecdsa-p256-sha256 (raw r||s),
// rsa-pss-sha512 and rsa-v1_5-sha256. Structured fields are parsed by the strict
// parser in package sfv.
package httpsig

import (
	"net/http"
	"net/textproto"
	"strings"
)

// Message is the transport-neutral view of an HTTP message to sign or verify. A
// request sets Method, Scheme, Authority, RawPath and RawQuery; a response sets Status
// and, for components with the `req` parameter, Request.
type Message struct {
	Method    string // case-sensitive, as sent
	Scheme    string // "http" or "https"
	Authority string // host[:port], without userinfo
	// RawPath is the path exactly as sent, still percent-encoded ("" means "/");
	// RawQuery is the query without the '?'.
	RawPath, RawQuery string
	// Header holds every field line; keys are canonical (http.CanonicalHeaderKey),
	// other spellings are found by a case-insensitive scan.
	Header http.Header

	// Body is the content the Content-Digest is checked against.
	Body []byte
	// BodyMissing says the body was not made available (Body is meaningless);
	// BodyTruncated says Body holds only a prefix. Either makes a covered
	// Content-Digest unverifiable.
	BodyMissing, BodyTruncated bool

	Status  int      // responses only: the status code
	Request *Message // responses only: the request, for `req` components
}

// MessageFromRequest returns the Message view of r with the given body (nil for
// none). It works for outgoing requests (URL.Host, URL.Scheme set) and for requests
// received by a server (Host, TLS set). The Host header is taken from r.Host, which
// net/http keeps out of r.Header: cover it with @authority.
func MessageFromRequest(r *http.Request, body []byte) *Message {
	m := &Message{
		Method:   r.Method,
		Header:   r.Header,
		Body:     body,
		RawQuery: r.URL.RawQuery,
	}
	if m.Method == "" {
		m.Method = http.MethodGet
	}
	m.Scheme = r.URL.Scheme
	if m.Scheme == "" {
		m.Scheme = "http"
		if r.TLS != nil {
			m.Scheme = "https"
		}
	}
	m.Authority = r.Host
	if m.Authority == "" {
		m.Authority = r.URL.Host
	}
	if r.URL.Opaque != "" {
		m.RawPath = r.URL.Opaque
	} else {
		m.RawPath = r.URL.EscapedPath()
	}
	return m
}

// canonicalNames spares the allocation of canonicalizing the names verification
// reads on every request.
var canonicalNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"Signature-Input", "Signature", "Content-Digest", "Repr-Digest", "Content-Type",
		"Content-Length", "Transfer-Encoding", "Date", "Host", "Accept", "Authorization",
		"Cache-Control", "User-Agent", "X-Request-Id", "Idempotency-Key", "Client-Cert",
	} {
		m[strings.ToLower(n)] = n
	}
	return m
}()

// fieldLines returns the field lines of the header named by the lowercase name.
func fieldLines(h http.Header, name string) ([]string, bool) {
	key, ok := canonicalNames[name]
	if !ok {
		key = textproto.CanonicalMIMEHeaderKey(name)
	}
	if v, ok := h[key]; ok {
		return v, true
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// fieldValue returns the combined value of a field (lines joined by ", ").
func fieldValue(h http.Header, name string) (string, bool) {
	lines, ok := fieldLines(h, name)
	if !ok || len(lines) == 0 {
		return "", false
	}
	if len(lines) == 1 {
		return trimOWS(lines[0]), true
	}
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(trimOWS(l))
	}
	return b.String(), true
}

// trimOWS removes leading and trailing spaces and tabs.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// hasBody reports whether the message carries content: a non-empty body, or, when the
// body was not made available, whatever the framing says. Without framing headers
// (HTTP/2 needs none) it fails closed: only methods that normally carry no content
// are assumed to have none.
func (m *Message) hasBody() bool {
	if !m.BodyMissing {
		return len(m.Body) > 0
	}
	if _, ok := fieldLines(m.Header, "transfer-encoding"); ok {
		return true
	}
	if cl, ok := fieldValue(m.Header, "content-length"); ok {
		return cl != "0"
	}
	switch m.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return m.Status == 0
}
