package telemetry

import (
	"crypto/rand"
	"encoding/hex"
)

// MaxRequestIDLen bounds an accepted inbound request id.
const MaxRequestIDLen = 128

// RequestID returns inbound when it is a well-formed request id (1 to 128 characters
// of [A-Za-z0-9._:+=/-], e.g. a UUID or Envoy's id), else a new random id. Accepting only
// that alphabet keeps ids safe to log and to echo in headers and JSON bodies.
func RequestID(inbound string) string {
	if ValidRequestID(inbound) {
		return inbound
	}
	return NewRequestID()
}

// ValidRequestID reports whether s is a well-formed request id.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == ':' || c == '+' || c == '=' || c == '/':
		default:
			return false
		}
	}
	return true
}

// NewRequestID returns a random version-4 UUID string.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
