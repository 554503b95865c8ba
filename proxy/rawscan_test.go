package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var testLimits = scanLimits{maxHeaderBytes: 1024, maxHeaderCount: 10}

// scanAll runs input through a conn whose network delivers step bytes per read and
// whose reader asks for readSize bytes at a time; it returns everything net/http would
// have read and the error that ended the stream.
func scanAll(input []byte, step, readSize int) ([]byte, *rejection, error) {
	c := &conn{Conn: &stepConn{data: input, step: step}, sc: scanner{lim: testLimits}}
	var out []byte
	p := make([]byte, readSize)
	for i := 0; i < 4*(len(input)+len(syntheticReject))+16; i++ {
		n, err := c.Read(p)
		out = append(out, p[:n]...)
		if err != nil {
			return out, c.rejected.Load(), err
		}
	}
	return out, nil, errors.New("no progress")
}

// stepConn is a net.Conn delivering data step bytes per Read, then io.EOF.
type stepConn struct {
	net.Conn
	data []byte
	step int
}

func (s *stepConn) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), s.step, len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *stepConn) SetReadDeadline(time.Time) error { return nil }

func TestScannerVerdicts(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 1100) + "\r\n\r\n"
	many := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", 10) + "\r\n"
	tests := []struct {
		name     string
		in       string
		released string     // bytes given to net/http before the end of the stream
		rej      *rejection // header-block rejection (synthetic request follows)
		bodyErr  *rejection // framing error inside a body
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", nil, nil},
		{"content-length body then request",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: a\r\n\r\n", nil, nil},
		{"chunked body then request",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", nil, nil},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", nil, nil},
		{"too many leading empty lines", "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "", rejRequestLine, nil},
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "", rejCLAndTE, nil},
		{"te and cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "", rejCLAndTE, nil},
		{"te not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "", rejTransferCoding, nil},
		{"te twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "", rejTransferCoding, nil},
		{"te on http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "", rejTransferCoding, nil},
		{"cl twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", "", rejContentLength, nil},
		{"cl signed", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", "", rejContentLength, nil},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", "", rejObsFold, nil},
		{"obs-fold te", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", "", rejObsFold, nil},
		{"bare lf", "GET / HTTP/1.1\nHost: a\n\n", "", rejBareLF, nil},
		{"bare lf in header", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "", rejBareLF, nil},
		{"bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "", rejBareCR, nil},
		{"nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "", rejHeaderValue, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nHost : a\r\n\r\n", "", rejHeaderName, nil},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nHost\r\n\r\n", "", rejHeaderName, nil},
		{"http/2 version", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", rejVersion, nil},
		{"garbage version", "GET / HTTX/1.1\r\n\r\n", "", rejRequestLine, nil},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "", rejRequestLine, nil},
		{"non-ascii target", "GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", "", rejTarget, nil},
		{"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", "", rejTarget, nil},
		{"reserved method", rejectMethod + " / HTTP/1.1\r\nHost: a\r\n\r\n", "", rejMethod, nil},
		{"absolute agrees", "GET http://A.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET http://A.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n", nil, nil},
		{"absolute disagrees", "GET http://evil/x HTTP/1.1\r\nHost: good\r\n\r\n", "", rejHost, nil},
		{"absolute userinfo", "GET http://u@good/x HTTP/1.1\r\nHost: good\r\n\r\n", "", rejTarget, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "", rejHost, nil},
		{"header bytes", big, "", rejHeaderBytes, nil},
		{"header count", many, "", rejHeaderCount, nil},
		{"good then bad", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\nX: y\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", rejBareLF, nil},
		{"upgrade passes the rest raw",
			"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\x81\x05hello\n\n",
			"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\x81\x05hello\n\n", nil, nil},
		{"upgrade in asterisk-form keeps framing",
			"OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nGET /x HTTP/1.1\nHost: a\n\n",
			"OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", rejBareLF, nil},
		{"upgrade in absolute-form keeps framing",
			"GET http://a/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nPOST /y HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			"GET http://a/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", rejCLAndTE, nil},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", nil, rejChunked},
		{"chunk bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3", nil, rejChunked},
		{"chunk data without crlf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", nil, rejChunked},
		{"trailer obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n b\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n", nil, rejObsFold},
		{"trailer bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\n\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a", nil, rejBareLF},
		{"huge chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100000000000000", nil, rejChunked},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 3, 7, 4096} {
			out, rej, err := scanAll([]byte(tt.in), step, 64)
			want := tt.released
			if tt.rej != nil {
				want += string(syntheticReject)
			}
			if string(out) != want {
				t.Errorf("%s (step %d): released\n%q\nwant\n%q", tt.name, step, out, want)
			}
			if rej != tt.rej {
				t.Errorf("%s (step %d): rejection %v, want %v", tt.name, step, rej, tt.rej)
			}
			switch {
			case tt.bodyErr != nil && !errors.Is(err, tt.bodyErr):
				t.Errorf("%s (step %d): err %v, want %v", tt.name, step, err, tt.bodyErr)
			case tt.bodyErr == nil && err != io.EOF:
				t.Errorf("%s (step %d): err %v, want EOF", tt.name, step, err)
			}
		}
	}
}

// An incomplete header block is held back until it is complete.
func TestScannerHoldsIncompleteBlock(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := &conn{Conn: b, sc: scanner{lim: testLimits}}
	defer c.Close()
	got := make(chan string, 1)
	go func() {
		p := make([]byte, 256)
		n, _ := c.Read(p)
		got <- string(p[:n])
	}()
	for _, part := range []string{"GET / HTTP/1.1\r\nHo", "st: a\r\n", "\r\n"} {
		select {
		case s := <-got:
			t.Fatalf("released %q before the block was complete", s)
		default:
		}
		if _, err := a.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if s := <-got; s != "GET / HTTP/1.1\r\nHost: a\r\n\r\n" {
		t.Fatalf("released %q", s)
	}
}

func FuzzScanner(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nxyz",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(1), uint8(16))
	}
	f.Fuzz(func(t *testing.T, in []byte, step, readSize uint8) {
		whole, wrej, werr := scanAll(in, len(in)+1, 4096)
		split, srej, serr := scanAll(in, int(step)%17+1, int(readSize)%33+1)
		if !bytes.Equal(whole, split) || wrej != srej || (werr == nil) != (serr == nil) {
			t.Fatalf("read boundaries changed the result:\n%q %v %v\n%q %v %v", whole, werr, wrej, split, serr, srej)
		}
		released := whole
		if wrej != nil {
			if !bytes.HasSuffix(whole, syntheticReject) {
				t.Fatalf("rejection without the synthetic request: %q", whole)
			}
			released = whole[:len(whole)-len(syntheticReject)]
		}
		if !bytes.HasPrefix(in, released) {
			t.Fatalf("released bytes are not a prefix of the input:\n%q\n%q", released, in)
		}
		if bytes.HasPrefix(released, []byte(rejectMethod)) {
			t.Fatalf("a client request with the reserved method was released: %q", released)
		}
	})
}
