package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Front-end refusals: requests the proxy answers without consulting the engine.
var (
	refMethod       = &rejection{http.StatusMethodNotAllowed, "method.refused", "CONNECT and TRACE are not allowed through this proxy"}
	refPRI          = &rejection{http.StatusBadRequest, "method.refused", "PRI is the HTTP/2 preface, not a method"}
	refDupAuth      = &rejection{http.StatusBadRequest, "header.duplicate_authorization", "more than one Authorization header"}
	refH2C          = &rejection{http.StatusBadRequest, "upgrade.h2c", "h2c upgrades are refused"}
	refUpgrade      = &rejection{http.StatusBadRequest, "upgrade.unsupported", "only WebSocket upgrades are accepted"}
	refBodyTooLarge = &rejection{http.StatusRequestEntityTooLarge, "body.too_large", "request body too large"}
	refBodyRead     = &rejection{http.StatusBadRequest, "body.read", "could not read the request body"}
	refPath         = &rejection{http.StatusBadRequest, "path.invalid", "request path is not acceptable"}
	refInternal     = &rejection{http.StatusBadRequest, "framing.rejected", "malformed request"}
)

// refuse applies the checks that need no policy, and sets the path fields of x.req
// (PROXY.md §7, §8, §9, §11, §12; the raw-byte checks ran in conn before net/http
// parsed the request).
func (p *Proxy) refuse(r *http.Request, x *exchange) *rejection {
	switch r.Method {
	case rejectMethod:
		if c := connFrom(r.Context()); c != nil {
			if rej := c.rejected.Load(); rej != nil {
				return rej
			}
		}
		return refInternal
	case http.MethodConnect, http.MethodTrace:
		return refMethod
	case "PRI":
		return refPRI
	}
	if len(r.Header["Authorization"]) > 1 {
		return refDupAuth
	}
	if x.upgrade {
		// Only origin-form upgrades: the raw scanner stops framing the connection
		// after those alone.
		if !strings.HasPrefix(r.RequestURI, "/") {
			return refUpgrade
		}
		if rej := p.checkUpgrade(r.Header); rej != nil {
			return rej
		}
	}
	if p.o.MaxBodyBytes > 0 && r.ContentLength > p.o.MaxBodyBytes {
		return refBodyTooLarge
	}
	// The path as received: EscapedPath re-encodes the decoded path (turning %2F into
	// a real /) whenever the target holds a byte url.URL does not keep verbatim, such
	// as | or {; RawPath is set exactly when the received form differs from that.
	raw := r.URL.RawPath
	if raw == "" {
		raw = r.URL.EscapedPath()
	}
	dec, enc, err := engine.CleanPath(raw)
	if err != nil {
		return refPath
	}
	x.req.Path, x.req.RawPath = dec, raw
	if enc != dec {
		x.fwdRawPath = enc
	}
	return nil
}

// expectsContinue reports whether the client waits for a 100 Continue before sending
// its body (net/http sends it on the first body read).
func expectsContinue(r *http.Request) bool {
	return r.ProtoAtLeast(1, 1) && r.ContentLength != 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue")
}

// checkUpgrade accepts only WebSocket upgrades (PROXY.md §7: h2c smuggles requests
// past the proxy's view).
func (p *Proxy) checkUpgrade(h http.Header) *rejection {
	if _, ok := h["Http2-Settings"]; ok {
		return refH2C
	}
	for _, v := range h["Upgrade"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			switch {
			case strings.EqualFold(tok, "h2c"):
				return refH2C
			case p.o.WebSocket.Disabled || !strings.EqualFold(tok, "websocket"):
				return refUpgrade
			}
		}
	}
	return nil
}

// readBody reads up to limit body bytes for the stages (one more to learn whether the
// body is longer) and puts them back in front of the rest, so the upstream receives
// the body unchanged.
func (p *Proxy) readBody(r *http.Request, req *engine.Request, limit int64) *rejection {
	req.HasBody = true
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	want := limit + 1
	if r.ContentLength > 0 && r.ContentLength < want {
		want = r.ContentLength + 1 // read to EOF
	}
	buf, eof, err := readUpTo(r.Body, want, r.ContentLength)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return refBodyTooLarge
		}
		var rej *rejection
		if errors.As(err, &rej) { // the idle timeout, or framing the raw scanner refused
			return rej
		}
		return refBodyRead
	}
	req.Body = buf
	if int64(len(buf)) > limit {
		req.Body, req.BodyTruncated = buf[:limit], true
	}
	if eof {
		r.Body = io.NopCloser(bytes.NewReader(buf))
	} else {
		r.Body = prefixedBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	}
	return nil
}

// prefixedBody is a request body whose first bytes were already read.
type prefixedBody struct {
	io.Reader
	io.Closer
}

// readUpTo reads until n bytes or EOF. sizeHint (a Content-Length, or -1) sizes the
// buffer so a declared body is read without regrowing.
func readUpTo(r io.Reader, n, sizeHint int64) (buf []byte, eof bool, err error) {
	c := int64(512)
	if sizeHint >= 0 {
		c = sizeHint + 1
	}
	buf = make([]byte, 0, min(c, n))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// tlsPrincipal names a verified client certificate: its first URI SAN (a SPIFFE ID
// under a mesh), else its first DNS SAN, else its subject.
func tlsPrincipal(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := cs.VerifiedChains[0][0]
	switch {
	case len(leaf.URIs) > 0:
		return leaf.URIs[0].String()
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	}
	return leaf.Subject.String()
}
