package telemetry

import "unicode/utf8"

// AppendErrorBody appends the JSON deny body every front-end sends,
// {"error":message,"reason":code,"request_id":id}, without reflection or allocation
// beyond b's growth.
func AppendErrorBody(b []byte, message, reason, id string) []byte {
	b = append(b, `{"error":`...)
	b = appendJSONString(b, message)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, reason)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, id)
	return append(b, '}')
}

// ErrorBodySize is a capacity hint for AppendErrorBody.
func ErrorBodySize(message, reason, id string) int { return 48 + len(message) + len(reason) + len(id) }

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control bytes are escaped, invalid
// UTF-8 becomes U+FFFD, and <, > and & are escaped so the body is inert in HTML.
// Runs of bytes that need nothing are copied whole: most values (paths, hosts,
// request ids) are one such run, and a per-byte append was a third of a decision
// line's cost.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && jsonPlain[s[j]] {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' {
				b = append(b, '\\', c)
			} else {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
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

// jsonPlain marks the bytes appendJSONString copies as they are: printable ASCII
// except ", \, <, > and &.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
