package proxy

import (
	"bytes"
	"golang.org/x/net/http/httpguts"
	"net/http"
	"strings"
)

// The raw scanner closes the gaps net/http leaves in HTTP/1 framing (PROXY.md §1-3, §12):
// it sees every byte a client sends before net/http parses it, follows the message
// framing (Content-Length, chunked, upgrade) so it knows where each pipelined request's
// header block starts, and checks every header block as a whole before releasing it.
// Bodies are never buffered: body bytes are released as they are framed.

// rejection is why the scanner refused a header block. The values are package
// variables, so a rejection never allocates.
type rejection struct {
	status  int
	reason  string // stable code, safe to log and show
	message string
}

func (r *rejection) Error() string { return "proxy: rejected request framing: " + r.reason }

var (
	rejCLAndTE        = &rejection{http.StatusBadRequest, "framing.cl_and_te", "request has both Content-Length and Transfer-Encoding"}
	rejObsFold        = &rejection{http.StatusBadRequest, "framing.obs_fold", "obsolete line folding in the header block"}
	rejBareLF         = &rejection{http.StatusBadRequest, "framing.bare_lf", "header line ends in a bare LF"}
	rejBareCR         = &rejection{http.StatusBadRequest, "framing.bare_cr", "bare CR in the header block"}
	rejRequestLine    = &rejection{http.StatusBadRequest, "framing.request_line", "malformed request line"}
	rejVersion        = &rejection{http.StatusHTTPVersionNotSupported, "framing.version", "only HTTP/1.0 and HTTP/1.1 are accepted"}
	rejTarget         = &rejection{http.StatusBadRequest, "framing.target", "malformed request target"}
	rejHeaderName     = &rejection{http.StatusBadRequest, "framing.header_name", "malformed header line"}
	rejHeaderValue    = &rejection{http.StatusBadRequest, "framing.header_value", "invalid byte in a header value"}
	rejContentLength  = &rejection{http.StatusBadRequest, "framing.content_length", "malformed or repeated Content-Length"}
	rejTransferCoding = &rejection{http.StatusBadRequest, "framing.transfer_encoding", "Transfer-Encoding must be exactly chunked, once, on HTTP/1.1"}
	rejHost           = &rejection{http.StatusBadRequest, "framing.host", "repeated Host header, or an absolute-form target that disagrees with Host"}
	rejNoHost         = &rejection{http.StatusBadRequest, "framing.host", "missing or malformed Host header"}
	rejExpect         = &rejection{http.StatusExpectationFailed, "framing.expect", "the only accepted expectation is 100-continue"}
	rejMethod         = &rejection{http.StatusBadRequest, "framing.method", "reserved method"}
	rejChunked        = &rejection{http.StatusBadRequest, "framing.chunked", "malformed chunked body"}
	rejHeaderBytes    = &rejection{http.StatusRequestHeaderFieldsTooLarge, "limits.header_bytes", "request header block too large"}
	rejHeaderCount    = &rejection{http.StatusRequestHeaderFieldsTooLarge, "limits.header_count", "too many request header fields"}
)

// rejectMethod is the method of the synthetic request that replaces a rejected header
// block (see conn). The scanner refuses it from clients, so only the scanner produces it.
const rejectMethod = "PORTCULLIS-REJECT"

type scanState uint8

const (
	stHead         scanState = iota // inside (or before) a request header block
	stBody                          // Content-Length body bytes remain
	stChunkSize                     // chunk-size digits
	stChunkExt                      // chunk extension up to CR
	stChunkSizeLF                   // LF after the chunk-size line
	stChunkData                     // chunk payload
	stChunkDataCR                   // CR after the payload
	stChunkDataLF                   // LF after the payload
	stTrailerStart                  // start of a trailer line or of the final CRLF
	stTrailerName                   // trailer field name
	stTrailerValue                  // trailer field value
	stTrailerLF                     // LF ending a trailer line
	stTrailerEndLF                  // LF ending the trailer section
	stPass                          // after an upgrade request: raw pipe, never scanned again
)

const (
	maxLeadingEmptyLines = 2  // RFC 9112 §2.2 tolerance, within what net/http discards
	maxChunkSizeDigits   = 15 // 2^60 bytes is plenty and cannot overflow int64
	maxChunkLineBytes    = 4096
)

// scanLimits bounds one header block.
type scanLimits struct {
	maxHeaderBytes int // request line + header fields + final CRLF
	maxHeaderCount int // header field lines
}

// blockFacts are what the scanner learned from the header block in progress.
type blockFacts struct {
	http10        bool
	origin        bool // origin-form target ("/..."): the only form an upgrade may use
	absolute      bool
	authority     string // absolute-form authority (allocated only for that form)
	hosts         int
	contentLength int64
	clLines       int
	teLines       int
	chunked       bool
	upgrade       bool
	connect       bool // CONNECT, which needs no Host (the handler refuses it)
}

// scanner is the framing state machine of one client connection. The zero value with
// limits set is ready.
type scanner struct {
	lim   scanLimits
	state scanState

	// header block in progress, offsets relative to its first byte
	searched  int
	lineStart int
	lines     int
	leading   int
	reqLine   bool
	facts     blockFacts

	// bodies
	remain    int64 // stBody: body bytes left; stChunkData: payload bytes left
	chunkSize int64
	digits    int
	lineBytes int // chunk extension or trailer section bytes
}

// advance examines b, the bytes after everything released so far, and returns how many
// of its leading bytes may be released to net/http. A header block is released only
// whole and checked; n < len(b) without a rejection means b[n:] starts a header block
// that is not complete yet: the caller keeps those bytes and calls advance again with
// them and the bytes that follow. With a rejection, b[:n] may still be released, but
// nothing after it.
func (s *scanner) advance(b []byte) (n int, rej *rejection) {
	for n < len(b) {
		switch s.state {
		case stPass:
			return len(b), nil
		case stHead:
			end, rej := s.head(b[n:])
			if rej != nil || end == 0 {
				return n, rej
			}
			n += end
		case stBody:
			k := int64(len(b) - n)
			if k > s.remain {
				k = s.remain
			}
			n += int(k)
			s.remain -= k
			if s.remain == 0 {
				s.state = stHead
			}
		default:
			k, rej := s.chunked(b[n:])
			n += k
			if rej != nil {
				return n, rej
			}
		}
	}
	return n, nil
}

// head scans a header block starting at b[0]. It returns the block's length once the
// whole block is present and valid, 0 when more bytes are needed, or a rejection.
func (s *scanner) head(b []byte) (int, *rejection) {
	limit := len(b)
	if limit > s.lim.maxHeaderBytes {
		limit = s.lim.maxHeaderBytes
	}
	for s.searched < limit {
		i := bytes.IndexByte(b[s.searched:limit], '\n')
		if i < 0 {
			s.searched = limit
			break
		}
		lf := s.searched + i
		if lf == 0 || b[lf-1] != '\r' {
			return 0, rejBareLF
		}
		done, rej := s.line(b[s.lineStart : lf-1])
		if rej != nil {
			return 0, rej
		}
		s.searched, s.lineStart = lf+1, lf+1
		if done {
			end := lf + 1
			if rej := s.finish(); rej != nil {
				return 0, rej
			}
			return end, nil
		}
	}
	if s.searched >= s.lim.maxHeaderBytes {
		return 0, rejHeaderBytes
	}
	return 0, nil
}

// line checks one header-block line (without its CRLF) and reports whether it was the
// empty line that ends the block.
func (s *scanner) line(l []byte) (done bool, rej *rejection) {
	if !s.reqLine {
		if len(l) == 0 {
			s.leading++
			if s.leading > maxLeadingEmptyLines {
				return false, rejRequestLine
			}
			return false, nil
		}
		s.reqLine = true
		return false, s.requestLine(l)
	}
	if len(l) == 0 {
		return true, nil
	}
	if l[0] == ' ' || l[0] == '\t' {
		return false, rejObsFold
	}
	s.lines++
	if s.lines > s.lim.maxHeaderCount {
		return false, rejHeaderCount
	}
	return false, s.field(l)
}

// requestLine checks method SP request-target SP HTTP-version.
func (s *scanner) requestLine(l []byte) *rejection {
	sp := bytes.IndexByte(l, ' ')
	if sp <= 0 || !isToken(l[:sp]) {
		return rejRequestLine
	}
	method, rest := l[:sp], l[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return rejRequestLine
	}
	target, version := rest[:sp], rest[sp+1:]
	switch {
	case string(version) == "HTTP/1.1":
	case string(version) == "HTTP/1.0":
		s.facts.http10 = true
	case len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) &&
		version[6] == '.' && isDigit(version[7]):
		return rejVersion
	default:
		return rejRequestLine
	}
	if string(method) == rejectMethod {
		return rejMethod
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return rejTarget
		}
	}
	if !validEscapes(target) {
		return rejTarget
	}
	return s.targetForm(method, target)
}

// targetForm accepts origin-form, asterisk-form, absolute-form with an http(s) scheme,
// and authority-form for CONNECT (which the handler refuses with a proper answer).
func (s *scanner) targetForm(method, target []byte) *rejection {
	switch {
	case target[0] == '/':
		s.facts.origin = true
		return nil
	case string(target) == "*":
		return nil
	case hasPrefixFold(target, "http://") || hasPrefixFold(target, "https://"):
		auth := target[bytes.Index(target, []byte("://"))+3:]
		if i := bytes.IndexAny(auth, "/?#"); i >= 0 {
			auth = auth[:i]
		}
		if len(auth) == 0 || bytes.IndexByte(auth, '@') >= 0 {
			return rejTarget
		}
		s.facts.absolute = true
		s.facts.authority = string(auth)
		return nil
	case string(method) == http.MethodConnect:
		s.facts.connect = true
		return nil
	}
	return rejTarget
}

// validEscapes reports whether every '%' in target starts a two-hex-digit escape, as
// net/http requires (it answers a bad one itself, with no decision behind it).
func validEscapes(target []byte) bool {
	for i := 0; i < len(target); i++ {
		if target[i] == '%' {
			if i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// field checks one header field line and records the framing facts.
func (s *scanner) field(l []byte) *rejection {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || !isToken(l[:colon]) {
		return rejHeaderName
	}
	name, value := l[:colon], trimOWS(l[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			if c == '\r' {
				return rejBareCR
			}
			return rejHeaderValue
		}
	}
	f := &s.facts
	switch {
	case equalFold(name, "content-length"):
		f.clLines++
		n, ok := parseContentLength(value)
		if !ok || f.clLines > 1 {
			return rejContentLength
		}
		f.contentLength = n
	case equalFold(name, "transfer-encoding"):
		f.teLines++
		f.chunked = equalFold(value, "chunked")
	case equalFold(name, "host"):
		f.hosts++
		if f.hosts > 1 || f.absolute && !strings.EqualFold(string(value), f.authority) {
			return rejHost
		}
		if !httpguts.ValidHostHeader(string(value)) {
			return rejNoHost
		}
	case equalFold(name, "expect"):
		if !equalFold(value, "100-continue") {
			return rejExpect
		}
	case equalFold(name, "upgrade"):
		f.upgrade = true
	}
	return nil
}

// finish validates the framing of a complete header block and sets the body state.
func (s *scanner) finish() *rejection {
	f := s.facts
	s.searched, s.lineStart, s.lines, s.leading, s.reqLine = 0, 0, 0, 0, false
	s.facts = blockFacts{}
	switch {
	case f.hosts == 0 && !f.http10 && !f.connect:
		// net/http refuses an HTTP/1.1 request without Host itself, answering with
		// no decision, no log line and no request id; refused here it gets all three.
		return rejNoHost
	case f.clLines > 0 && f.teLines > 0:
		return rejCLAndTE
	case f.teLines > 1 || f.teLines == 1 && (!f.chunked || f.http10):
		return rejTransferCoding
	case f.upgrade && f.origin:
		// The connection becomes a pipe if the upstream answers 101; if it does not,
		// the handler closes it after the response, so no further request is parsed
		// from bytes this scanner did not frame. Only an origin-form request may turn
		// scanning off (the handler refuses upgrades in any other form), so an
		// "OPTIONS *" or absolute-form request with Upgrade is framed like any other.
		s.state = stPass
	case f.chunked:
		s.state, s.chunkSize, s.digits = stChunkSize, 0, 0
	case f.contentLength > 0:
		s.state, s.remain = stBody, f.contentLength
	}
	return nil
}

// parseContentLength accepts 1 to 18 decimal digits (so the value fits an int64).
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isTokenByte reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTokenByte(c) {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lowercase ASCII string s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}
