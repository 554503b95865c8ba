package proxy

import (
	"encoding/binary"
	"errors"
	"time"
)

// WebSocket framing (RFC 6455 §5.2), as much as the proxy needs to enforce message
// limits without terminating the protocol: frame headers are parsed, payloads are
// counted as they stream through and never buffered or unmasked.

// Opcodes (RFC 6455 §5.2).
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

const (
	// wsMaxFrameHeader is the longest frame header: 2 bytes, a 64-bit length, a mask key.
	wsMaxFrameHeader = 2 + 8 + 4
	// wsMaxControlPayload is the largest payload of a control frame (RFC 6455 §5.5).
	wsMaxControlPayload = 125
)

// Close status codes the proxy sends (RFC 6455 §7.4.1).
const (
	wsCloseProtocolError   = 1002
	wsClosePolicyViolation = 1008
)

// wsFrameHeader is one parsed frame header.
type wsFrameHeader struct {
	fin    bool
	rsv    byte // RSV1..RSV3 as the low three bits
	opcode byte
	masked bool
	length int64 // payload bytes
}

// Length-field errors: RFC 6455 §5.2 requires the minimal encoding and a 64-bit length
// whose most significant bit is 0.
var (
	errWSLengthMSB     = errors.New("websocket: 64-bit payload length has its most significant bit set")
	errWSLengthEncoded = errors.New("websocket: payload length not in its minimal encoding")
)

// parseWSFrameHeader parses the frame header at the start of b. It returns the header
// and its size in bytes; size 0 (and no error) means b holds only part of a header.
func parseWSFrameHeader(b []byte) (wsFrameHeader, int, error) {
	var h wsFrameHeader
	if len(b) < 2 {
		return h, 0, nil
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] >> 4 & 0x7
	h.opcode = b[0] & 0x0f
	h.masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		v := binary.BigEndian.Uint16(b[2:])
		if v < 126 {
			return h, 0, errWSLengthEncoded
		}
		h.length, n = int64(v), 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:])
		switch {
		case v>>63 != 0:
			return h, 0, errWSLengthMSB
		case v <= 0xffff:
			return h, 0, errWSLengthEncoded
		}
		h.length, n = int64(v), 10
	default:
		h.length = int64(l)
	}
	if h.masked {
		n += 4
		if len(b) < n {
			return h, 0, nil
		}
	}
	return h, n, nil
}

// wsViolation is why the proxy closes a WebSocket connection. It is the error the
// client side of the tunnel returns once the upstream has been sent its Close frame.
type wsViolation struct {
	code   uint16 // close status sent both ways
	reason string // metric label and log field: "size", "rate" or "protocol"
	text   string // close reason sent both ways, at most 123 bytes
}

func (v *wsViolation) Error() string { return "websocket closed by the proxy: " + v.text }

// Every way a client frame can be refused.
var (
	wsViolSize         = &wsViolation{wsClosePolicyViolation, "size", "message too large"}
	wsViolRate         = &wsViolation{wsClosePolicyViolation, "rate", "message rate exceeded"}
	wsViolUnmasked     = &wsViolation{wsCloseProtocolError, "protocol", "unmasked client frame"}
	wsViolLength       = &wsViolation{wsCloseProtocolError, "protocol", "invalid payload length"}
	wsViolRSV          = &wsViolation{wsCloseProtocolError, "protocol", "reserved bits set without an extension"}
	wsViolOpcode       = &wsViolation{wsCloseProtocolError, "protocol", "reserved opcode"}
	wsViolControl      = &wsViolation{wsCloseProtocolError, "protocol", "fragmented or oversized control frame"}
	wsViolCloseLength  = &wsViolation{wsCloseProtocolError, "protocol", "close frame with a 1-byte payload"}
	wsViolContinuation = &wsViolation{wsCloseProtocolError, "protocol", "continuation frame outside a message"}
	wsViolInterleaved  = &wsViolation{wsCloseProtocolError, "protocol", "new message inside a fragmented message"}
)

// wsLimits are the per-connection limits of client messages, shared by every
// connection of a Proxy.
type wsLimits struct {
	maxBytes int64   // largest message payload (all its frames); 0: unlimited
	perNano  float64 // messages per nanosecond; 0: unlimited
	burst    float64
	now      func() time.Time
}

// messageBucket is a token bucket of messages: it holds at most burst tokens and
// refills at the configured rate; each message takes one.
type messageBucket struct {
	tokens float64
	last   time.Time
}

// take spends a token at now, or reports that none is left.
func (b *messageBucket) take(lim *wsLimits, now time.Time) bool {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(lim.burst, b.tokens+float64(el)*lim.perNano)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// wsScanner follows the frames of one direction of a WebSocket connection. With
// limits (the client-to-upstream direction) it checks every frame header before the
// frame is released; without (upstream-to-client) it only tracks frame boundaries.
// Memory is fixed: a partial header is kept, payloads are only counted.
type wsScanner struct {
	lim       *wsLimits // nil: boundaries only
	allowRSV  bool      // an extension was offered, so RSV bits may be set
	hdr       [wsMaxFrameHeader]byte
	nhdr      int   // bytes of a partial header in hdr
	remaining int64 // payload bytes left in the current frame
	inMessage bool  // a fragmented data message is open
	msgBytes  int64 // payload bytes of the open message so far
	bucket    messageBucket
	clock     time.Time // the current scan's time, read at its first message
	lost      bool      // boundaries-only mode met an unparsable header: boundaries unknown
}

// newWSScanner returns a scanner enforcing lim (nil: boundaries only), with a full
// token bucket.
func newWSScanner(lim *wsLimits, allowRSV bool) wsScanner {
	s := wsScanner{lim: lim, allowRSV: allowRSV}
	if lim != nil && lim.perNano > 0 {
		s.bucket = messageBucket{tokens: lim.burst, last: lim.now()}
	}
	return s
}

// atBoundary reports whether everything scanned so far ends exactly at a frame's end.
func (s *wsScanner) atBoundary() bool { return !s.lost && s.remaining == 0 && s.nhdr == 0 }

// scan advances over b, the bytes following those of the previous call. It returns
// how many bytes of b precede the first header that is incomplete (kept in s.hdr) or
// refused; a refused header's violation is returned with it, and s must not be used
// again.
func (s *wsScanner) scan(b []byte) (int, *wsViolation) {
	s.clock = time.Time{} // bytes read together arrived together: one clock reading
	i := 0
	for i < len(b) && !s.lost {
		if s.remaining > 0 {
			k := min(int64(len(b)-i), s.remaining)
			s.remaining -= k
			i += int(k)
			continue
		}
		start, held := i, s.nhdr
		var h wsFrameHeader
		var n, k int
		var err error
		if held == 0 { // the common case: parse in place
			h, n, err = parseWSFrameHeader(b[i:])
			if n == 0 && err == nil {
				k = copy(s.hdr[:], b[i:])
			}
		} else {
			k = copy(s.hdr[held:], b[i:])
			h, n, err = parseWSFrameHeader(s.hdr[:held+k])
		}
		switch {
		case err != nil && s.lim == nil:
			s.lost = true
			return len(b), nil
		case err != nil:
			return start, wsViolLength
		case n == 0:
			s.nhdr = held + k
			return start, nil
		}
		s.nhdr = 0
		i += n - held
		if s.lim != nil {
			if v := s.check(&h); v != nil {
				return start, v
			}
		}
		s.remaining = h.length
	}
	return i, nil
}

// check applies RFC 6455's rules for client frames and the message limits to h.
func (s *wsScanner) check(h *wsFrameHeader) *wsViolation {
	switch {
	case !h.masked:
		return wsViolUnmasked
	case h.rsv != 0 && !s.allowRSV:
		return wsViolRSV
	}
	switch h.opcode {
	case wsOpClose, wsOpPing, wsOpPong:
		if !h.fin || h.length > wsMaxControlPayload {
			return wsViolControl
		}
		if h.opcode == wsOpClose && h.length == 1 { // a status code takes 2 bytes
			return wsViolCloseLength
		}
		if h.opcode != wsOpClose && !s.takeMessage() {
			return wsViolRate
		}
		return nil
	case wsOpContinuation:
		if !s.inMessage {
			return wsViolContinuation
		}
	case wsOpText, wsOpBinary:
		if s.inMessage {
			return wsViolInterleaved
		}
		if !s.takeMessage() {
			return wsViolRate
		}
		s.msgBytes = 0
	default:
		return wsViolOpcode
	}
	if s.lim.maxBytes > 0 && h.length > s.lim.maxBytes-s.msgBytes {
		return wsViolSize
	}
	s.msgBytes += h.length
	s.inMessage = !h.fin
	return nil
}

// takeMessage spends a token for a new message when a rate is set. The messages of
// one scan share one clock reading.
func (s *wsScanner) takeMessage() bool {
	if s.lim.perNano == 0 {
		return true
	}
	if s.clock.IsZero() {
		s.clock = s.lim.now()
	}
	return s.bucket.take(s.lim, s.clock)
}

// appendWSClose appends a Close frame with code and text (at most 123 bytes). A mask
// key makes it a client frame (for the upstream); nil makes it a server frame.
func appendWSClose(dst []byte, code uint16, text string, mask *[4]byte) []byte {
	text = text[:min(len(text), wsMaxControlPayload-2)]
	n := 2 + len(text)
	b1 := byte(n)
	if mask != nil {
		b1 |= 0x80
	}
	dst = append(dst, 0x80|wsOpClose, b1)
	if mask != nil {
		dst = append(dst, mask[:]...)
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, code)
	dst = append(dst, text...)
	if mask != nil {
		for i := range dst[start:] {
			dst[start+i] ^= mask[i&3]
		}
	}
	return dst
}
