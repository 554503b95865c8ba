package proxy

import (
	"net/http"
	"strconv"
	"unicode/utf8"
)

// writeJSONError writes the error body every Portcullis front-end uses:
// {"error": message, "reason": code, "request_id": id}.
func writeJSONError(w http.ResponseWriter, status int, message, reason, id string) {
	b := make([]byte, 0, 48+len(message)+len(reason)+len(id))
	b = append(b, `{"error":`...)
	b = appendJSONString(b, message)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, reason)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, id)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	if id != "" {
		h["X-Request-Id"] = []string{id}
	}
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client may be gone; nothing left to do
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control bytes are escaped, invalid
// UTF-8 becomes U+FFFD, and <, > and & are escaped so the body is inert in HTML.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
