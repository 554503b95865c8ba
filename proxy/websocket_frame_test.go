package proxy

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseWSFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want wsFrameHeader
		n    int
		err  error
	}{
		{"empty", nil, wsFrameHeader{}, 0, nil},
		{"one byte", []byte{0x81}, wsFrameHeader{}, 0, nil},
		{"7-bit", []byte{0x81, 0x05}, wsFrameHeader{fin: true, opcode: 1, length: 5}, 2, nil},
		{"masked, key incomplete", []byte{0x82, 0x85, 1, 2, 3}, wsFrameHeader{}, 0, nil},
		{"masked", []byte{0x02, 0xfd, 1, 2, 3, 4}, wsFrameHeader{opcode: 2, masked: true, length: 125}, 6, nil},
		{"rsv bits", []byte{0xf1, 0x00}, wsFrameHeader{fin: true, rsv: 7, opcode: 1}, 2, nil},
		{"16-bit incomplete", []byte{0x81, 126, 0}, wsFrameHeader{}, 0, nil},
		{"16-bit", []byte{0x81, 0xfe, 0x01, 0x00, 9, 9, 9, 9}, wsFrameHeader{fin: true, opcode: 1, masked: true, length: 256}, 8, nil},
		{"16-bit not minimal", []byte{0x81, 126, 0, 125}, wsFrameHeader{}, 0, errWSLengthEncoded},
		{"64-bit", []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}, wsFrameHeader{fin: true, opcode: 2, length: 65536}, 10, nil},
		{"64-bit incomplete", []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0}, wsFrameHeader{}, 0, nil},
		{"64-bit not minimal", []byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, wsFrameHeader{}, 0, errWSLengthEncoded},
		{"64-bit msb", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, wsFrameHeader{}, 0, errWSLengthMSB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := parseWSFrameHeader(tc.in)
			if err != tc.err || n != tc.n || (n > 0 && h != tc.want) {
				t.Errorf("got %+v, %d, %v; want %+v, %d, %v", h, n, err, tc.want, tc.n, tc.err)
			}
		})
	}
}

// scanChunks feeds chunks to s the way wsConn does (held header bytes in front of
// the next chunk) and returns the bytes released and the violation, if any.
func scanChunks(s *wsScanner, chunks ...[]byte) (int, *wsViolation) {
	released := 0
	for _, c := range chunks {
		buf := append(append([]byte(nil), s.hdr[:s.nhdr]...), c...)
		s.nhdr = 0
		ok, v := s.scan(buf)
		released += ok
		if v != nil {
			return released, v
		}
	}
	return released, nil
}

func sizeLimit(maxBytes int64) *wsLimits {
	return &wsLimits{maxBytes: maxBytes, now: time.Now}
}

// Any split of a stream, down to single bytes, releases the same bytes with the same
// verdict; a partial header is held, never released.
func TestWSScannerSplits(t *testing.T) {
	stream := frames(
		textMsg("hello"),
		clientFrame(wsOpBinary, false, strings.Repeat("a", 300)),
		clientFrame(wsOpPing, true, "p"),
		clientFrame(wsOpContinuation, true, strings.Repeat("b", 70000)),
		clientFrame(wsOpClose, true, "\x03\xe8"),
	)
	bad := append(bytes.Clone(stream), frames(textMsg(strings.Repeat("x", 1<<17)))...)
	for _, tc := range []struct {
		in       []byte
		released int
		v        *wsViolation
	}{
		{stream, len(stream), nil},
		{bad, len(stream), wsViolSize},
	} {
		s := newWSScanner(sizeLimit(1<<17-1), false)
		if n, v := scanChunks(&s, tc.in); n != tc.released || v != tc.v {
			t.Fatalf("whole: %d, %v", n, v)
		}
		for split := 0; split < 400; split++ {
			s := newWSScanner(sizeLimit(1<<17-1), false)
			if n, v := scanChunks(&s, tc.in[:split], tc.in[split:]); n != tc.released || v != tc.v {
				t.Fatalf("split at %d: %d, %v", split, n, v)
			}
		}
		s = newWSScanner(sizeLimit(1<<17-1), false)
		ones := make([][]byte, 0, 600)
		for i := range min(600, len(tc.in)) {
			ones = append(ones, tc.in[i:i+1])
		}
		ones = append(ones, tc.in[len(ones):])
		if n, v := scanChunks(&s, ones...); n != tc.released || v != tc.v {
			t.Fatalf("byte by byte: %d, %v", n, v)
		}
	}
}

// The boundaries-only scanner (upstream to client) follows unmasked frames and gives
// up, without failing, on a header it cannot parse.
func TestWSScannerBoundaries(t *testing.T) {
	s := newWSScanner(nil, false)
	server := frames(wsTestFrame{fin: true, op: wsOpText, payload: []byte("hi")}, wsTestFrame{op: 0x3, payload: make([]byte, 200)})
	for i := range server {
		s.scan(server[i : i+1])
		if at := s.atBoundary(); at != (i == 3 || i == len(server)-1) {
			t.Fatalf("after byte %d: at boundary %v", i, at)
		}
	}
	if n, v := s.scan([]byte{0x81, 126, 0, 1}); n != 4 || v != nil || s.atBoundary() {
		t.Fatalf("unparsable header: %d, %v, boundary %v", n, v, s.atBoundary())
	}
}

func TestMessageBucket(t *testing.T) {
	start := time.Unix(1000, 0)
	now := start
	lim := &wsLimits{perNano: 2 / float64(time.Second), burst: 3, now: func() time.Time { return now }}
	s := newWSScanner(lim, false)
	take := func() bool { // one message per scan: each reads the clock
		s.clock = time.Time{}
		return s.takeMessage()
	}
	for i := range 3 {
		if !take() {
			t.Fatalf("burst message %d refused", i)
		}
	}
	if take() {
		t.Fatal("fourth message in the same instant passed")
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	if !take() || take() {
		t.Fatal("refill after 500ms is not one message")
	}
	now = now.Add(time.Hour) // idle: the bucket is full, not fuller
	for i := range 3 {
		if !take() {
			t.Fatalf("after idle, message %d refused", i)
		}
	}
	if take() {
		t.Fatal("idle time accumulated past the burst")
	}
	now = now.Add(-time.Second) // a clock going back refills nothing and breaks nothing
	if take() {
		t.Fatal("clock going back refilled")
	}
}

func TestAppendWSClose(t *testing.T) {
	long := strings.Repeat("r", 200)
	for _, mask := range []*[4]byte{nil, {1, 2, 3, 4}} {
		for _, text := range []string{"", "message too large", long} {
			f, err := readTestFrame(bytes.NewReader(appendWSClose(nil, 1008, text, mask)))
			want := text[:min(len(text), 123)]
			if err != nil || f.op != wsOpClose || !f.fin || f.masked != (mask != nil) ||
				f.closeCode() != 1008 || string(f.payload[2:]) != want {
				t.Errorf("mask %v, text %d bytes: %+v, %v", mask, len(text), f, err)
			}
		}
	}
}

// FuzzWebSocketFrames: on any input, the scanner never panics, keeps at most one
// partial header, releases the same bytes with the same verdict however the input is
// split, and what it releases decodes (with an independent reader) into masked frames
// that respect the control-frame and size rules.
func FuzzWebSocketFrames(f *testing.F) {
	f.Add(frames(textMsg("hello"), clientFrame(wsOpPing, true, "")), uint16(3), uint16(100))
	f.Add(frames(clientFrame(wsOpText, false, "ab"), clientFrame(wsOpContinuation, true, "cd")), uint16(7), uint16(3))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint16(1), uint16(0))
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, uint16(5), uint16(0))
	f.Add([]byte{0x82, 0xfe, 0, 5, 1, 2, 3, 4}, uint16(2), uint16(10))
	f.Add(frames(wsTestFrame{fin: true, rsv: 4, op: wsOpBinary, masked: true}, clientFrame(0xB, true, "")), uint16(9), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, split, maxBytes uint16) {
		s := newWSScanner(sizeLimit(int64(maxBytes)), split&1 == 0)
		n, v := scanChunks(&s, data)
		if n > len(data) || s.nhdr >= wsMaxFrameHeader {
			t.Fatalf("released %d of %d, holding %d", n, len(data), s.nhdr)
		}
		at := int(split) % (len(data) + 1)
		s2 := newWSScanner(sizeLimit(int64(maxBytes)), split&1 == 0)
		if n2, v2 := scanChunks(&s2, data[:at], data[at:]); n2 != n || v2 != v {
			t.Fatalf("split at %d: %d, %v; whole: %d, %v", at, n2, v2, n, v)
		}
		checkReleased(t, data[:n], int64(maxBytes))
	})
}

// checkReleased decodes released bytes frame by frame with the test reader.
func checkReleased(t *testing.T, released []byte, maxBytes int64) {
	r := bytes.NewReader(released)
	msg := int64(0)
	for r.Len() > 0 {
		fr, err := readTestFrame(r)
		if err != nil { // the last frame's payload is still streaming
			return
		}
		if !fr.masked {
			t.Fatalf("released an unmasked frame %+v", fr)
		}
		if fr.op >= wsOpClose && (!fr.fin || len(fr.payload) > wsMaxControlPayload) {
			t.Fatalf("released a bad control frame %+v", fr)
		}
		if fr.op < wsOpClose {
			if fr.op != wsOpContinuation {
				msg = 0
			}
			msg += int64(len(fr.payload))
			if maxBytes > 0 && msg > maxBytes {
				t.Fatalf("released a message of %d bytes, limit %d", msg, maxBytes)
			}
		}
	}
}
