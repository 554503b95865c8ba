package engine

import (
	"errors"
	"strings"
)

// Path errors. Front-ends answer 400 to any of them.
var (
	ErrPathNotAbsolute   = errors.New("path must start with /")
	ErrPathBadEncoding   = errors.New("path has an invalid percent-encoding")
	ErrPathForbiddenByte = errors.New("path contains an encoded slash, backslash, NUL, semicolon or control byte")
)

// CleanPath normalizes a request path as received (percent-encoded, without the query)
// so that policy matches the resource the upstream will serve (PROXY.md §9):
//   - percent-encoded unreserved characters are decoded, other escapes are upper-cased;
//   - %2F, %5C, %00 and %3B (and raw backslash, semicolon or control bytes) are rejected,
//     because upstreams disagree on what they mean (Spring's StrictHttpFirewall does
//     the same);
//   - runs of slashes collapse to one;
//   - "." and ".." segments are removed (RFC 3986 §5.2.4); ".." never climbs above "/".
//
// It returns the decoded path used for matching and the encoded path to forward; both
// describe the same resource. The result for an already-clean path is the input
// itself, without allocating.
func CleanPath(raw string) (decoded, encoded string, err error) {
	if raw == "" || raw[0] != '/' {
		return "", "", ErrPathNotAbsolute
	}
	if isCleanPath(raw) {
		return raw, raw, nil
	}
	enc, err := normalizeEscapes(raw)
	if err != nil {
		return "", "", err
	}
	enc = removeDotSegments(enc)
	dec, err := unescapePath(enc)
	if err != nil {
		return "", "", err
	}
	return dec, enc, nil
}

// isCleanPath reports whether p needs no work: no escapes, no forbidden bytes, no empty
// or dot segments.
func isCleanPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' || c == '\\' || c == ';' || c < 0x20 || c == 0x7f:
			return false
		case c == '/':
			if i+1 < len(p) && p[i+1] == '/' {
				return false
			}
			if i+1 < len(p) && p[i+1] == '.' {
				rest := p[i+1:]
				if rest == "." || rest == ".." || strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
					return false
				}
			}
		}
	}
	return true
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

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

// normalizeEscapes decodes unreserved escapes, upper-cases the rest, rejects forbidden
// bytes and collapses slash runs.
func normalizeEscapes(p string) (string, error) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) {
				return "", ErrPathBadEncoding
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", ErrPathBadEncoding
			}
			v := hi<<4 | lo
			if v == '/' || v == '\\' || v == 0 || v == ';' || v < 0x20 || v == 0x7f {
				return "", ErrPathForbiddenByte
			}
			i += 2
			if isUnreserved(v) {
				b.WriteByte(v)
				continue
			}
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i-1 : i+1]))
		case c == '\\' || c == ';' || c < 0x20 || c == 0x7f:
			return "", ErrPathForbiddenByte
		case c == '/' && b.Len() > 0 && strings.HasSuffix(b.String(), "/"):
			// collapse "//"
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// removeDotSegments implements RFC 3986 §5.2.4 on a slash-collapsed absolute path.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// unescapePath decodes every escape of an already validated path.
func unescapePath(p string) (string, error) {
	if strings.IndexByte(p, '%') < 0 {
		return p, nil
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b = append(b, p[i])
			continue
		}
		if i+2 >= len(p) {
			return "", ErrPathBadEncoding
		}
		hi, ok1 := unhex(p[i+1])
		lo, ok2 := unhex(p[i+2])
		if !ok1 || !ok2 {
			return "", ErrPathBadEncoding
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}
