package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Each PROXY.md item as raw bytes on a TCP connection: what the client got and what
// the upstream saw.
func TestHardeningRawBytes(t *testing.T) {
	h := startProxy(t, nil)
	const smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		item   string
		raw    string
		status []int  // responses on the connection, in order
		reason string // reason of the last response, when it is an error
		seen   []string
	}{
		{"1 CL+TE", "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			[]int{400}, "framing.cl_and_te", nil},
		{"1 TE+CL smuggle", "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n1\r\nZ\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{400}, "framing.cl_and_te", nil},
		{"2 obs-fold", "GET /public/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", []int{400}, "framing.obs_fold", nil},
		{"2 obs-fold TE", "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", []int{400}, "framing.obs_fold", nil},
		{"3 bare LF", "GET /public/x HTTP/1.1\nHost: a\n\n", []int{400}, "framing.bare_lf", nil},
		{"3 bare LF after good request", "GET /public/one HTTP/1.1\r\nHost: a\r\n\r\nGET /public/two HTTP/1.1\nHost: a\n\n",
			[]int{200, 400}, "framing.bare_lf", []string{"/public/one"}},
		{"4 pipelined, each decided", "GET /public/a HTTP/1.1\r\nHost: a\r\n\r\n" +
			"GET /api/b HTTP/1.1\r\nHost: a\r\nX-Api-Key: good-key\r\n\r\n" +
			"GET /api/c HTTP/1.1\r\nHost: a\r\n\r\n" +
			"GET /admin/d HTTP/1.1\r\nHost: a\r\nX-Api-Key: good-key\r\n\r\n" +
			"GET /public/e HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]int{200, 200, 401, 403, 200}, "", []string{"/public/a", "/api/b", "/public/e"}},
		{"4 chunked body then smuggled request", "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]int{200, 403}, "admin.blocked", []string{"/public/x"}},
		{"4 request in a body stays a body", "POST /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: " +
			strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled,
			[]int{200}, "", []string{"/public/x"}},
		{"7 h2c", get("/public/x", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA", "Connection: Upgrade, HTTP2-Settings"),
			[]int{400}, "upgrade.h2c", nil},
		{"7 other upgrade", get("/public/x", "Upgrade: TLS/1.0", "Connection: Upgrade"), []int{400}, "upgrade.unsupported", nil},
		{"7 absolute-form upgrade", "GET http://a/public/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
			"GET /public/y HTTP/1.1\nHost: a\n\n", []int{400}, "upgrade.unsupported", nil},
		{"7 OPTIONS * with Upgrade", "OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\nGET /public/y HTTP/1.1\nHost: a\n\n",
			[]int{400}, "upgrade.unsupported", nil},
		{"8 duplicate Authorization", get("/public/x", "Authorization: Bearer a", "authorization: Bearer b"),
			[]int{400}, "header.duplicate_authorization", nil},
		{"9 dot-dot", get("/public/../admin"), []int{403}, "admin.blocked", nil},
		{"9 encoded dot-dot", get("/public/%2e%2E/admin"), []int{403}, "admin.blocked", nil},
		{"9 double slash", get("//admin"), []int{403}, "admin.blocked", nil},
		{"9 matrix param", get("/admin;x=1"), []int{400}, "path.invalid", nil},
		{"9 NUL", get("/admin%00.png"), []int{400}, "path.invalid", nil},
		{"9 encoded slash", get("/public%2f..%2fadmin"), []int{400}, "path.invalid", nil},
		{"9 encoded backslash", get("/public/..%5cadmin"), []int{400}, "path.invalid", nil},
		{"9 encoded slash beside a byte url.URL re-encodes", get("/public/a%2Fb|"), []int{400}, "path.invalid", nil},
		{"9 encoded dot-dot beside a brace", get("/public/%2e%2e/admin{"), []int{403}, "admin.blocked", nil},
		{"9 normalized forward", get("/public/%7euser/./x/../y"), []int{200}, "", []string{"/public/~user/y"}},
		{"10 absolute-form disagrees with Host", "GET http://evil.example/public/x HTTP/1.1\r\nHost: app.example\r\n\r\n",
			[]int{400}, "framing.host", nil},
		{"10 absolute-form agrees", "GET http://app.example/public/x HTTP/1.1\r\nHost: APP.example\r\nConnection: close\r\n\r\n",
			[]int{200}, "", []string{"/public/x"}},
		{"11 CONNECT", "CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n", []int{405}, "method.refused", nil},
		{"11 TRACE", "TRACE /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []int{405}, "method.refused", nil},
		{"11 PRI preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []int{505}, "framing.version", nil},
		{"11 PRI method", "PRI /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []int{400}, "method.refused", nil},
		{"12 header bytes", get("/public/x", "X-Big: "+strings.Repeat("b", 5000)), []int{431}, "limits.header_bytes", nil},
		{"12 header count", get("/public/x", strings.Repeat("X-N: 1\r\n", 20)+"X-N: 1"), []int{431}, "limits.header_count", nil},
		{"13 lowercase method is another method", "get /getonly/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]int{404}, "route.none", nil},
		{"13 method override", "POST /getonly/x HTTP/1.1\r\nHost: a\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			[]int{404}, "route.none", nil},
		{"15 trailers do not merge", "POST /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: X-Portcullis-Subject\r\n\r\n" +
			"2\r\nhi\r\n0\r\nX-Portcullis-Subject: root\r\nAuthorization: Bearer x\r\n\r\n",
			[]int{200}, "", []string{"/public/x"}},
		{"15 trailer obs-fold", "POST /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"2\r\nhi\r\n0\r\nX-T: a\r\n b\r\n\r\n",
			[]int{400}, "framing.obs_fold", nil},
		// Framing refused while the body streams to the upstream is the client's
		// error (400 with the scanner's reason), not an upstream failure (502).
		{"1 chunk lines ending in bare LF", "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\n0\n\n",
			[]int{400}, "framing.chunked", nil},
		{"1 chunk size with trailing space", "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nhi\r\n0\r\n\r\n",
			[]int{400}, "framing.chunked", nil},
	}
	seenBefore := 0
	for _, tt := range tests {
		t.Run(tt.item, func(t *testing.T) {
			rs := h.send(t, tt.raw)
			if tt.status == nil {
				for _, r := range rs {
					if r.StatusCode == http.StatusOK {
						t.Fatalf("got 200 for a malformed body: %q", r.body)
					}
				}
			} else {
				wantStatuses(t, rs, tt.status...)
			}
			if tt.reason != "" {
				if e := decodeError(t, rs[len(rs)-1]); e.Reason != tt.reason {
					t.Errorf("reason %q, want %q", e.Reason, tt.reason)
				}
			}
			got := h.up.requests()[seenBefore:]
			seenBefore += len(got)
			if len(got) != len(tt.seen) {
				t.Fatalf("upstream saw %d requests %+v, want %v", len(got), got, tt.seen)
			}
			for i, r := range got {
				if r.RequestURI != tt.seen[i] {
					t.Errorf("upstream request %d: %q, want %q", i, r.RequestURI, tt.seen[i])
				}
				if r.Header.Get("X-Portcullis-Subject") == "root" || len(r.Trailer) > 0 || r.Header.Get("X-Http-Method-Override") != "" {
					t.Errorf("upstream request %d carried %v trailers %v", i, r.Header, r.Trailer)
				}
			}
		})
	}
}

// An upgrade request that net/http could answer without the handler must not end the
// raw scanner's framing: "OPTIONS *" was answered by net/http's own OPTIONS handler,
// which kept the connection open while the scanner, seeing Upgrade, had stopped
// framing it, so any request after it reached the upstream unchecked.
func TestUpgradeOnOptionsStarKeepsFraming(t *testing.T) {
	const first = "OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
	cases := []struct{ name, second string }{
		{"3 bare LF", "GET /public/bare-lf HTTP/1.1\nHost: a\nConnection: close\n\n"},
		{"2 obs-fold TE", "POST /public/obs-fold HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"},
		{"1 CL+TE", "POST /public/cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
		{"10 absolute-form vs Host", "GET http://evil.example/public/abs HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"},
		{"12 header count", "GET /public/count HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-N: 1\r\n", 60) + "Connection: close\r\n\r\n"},
		{"well-formed", "GET /public/fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := startProxy(t, nil)
			rs := h.send(t, first+c.second)
			if len(rs) == 0 || rs[0].StatusCode != http.StatusBadRequest {
				t.Fatalf("statuses %v, want 400 first (OPTIONS * is decided by the handler)", statuses(rs))
			}
			if got := h.up.requests(); len(got) != 0 {
				t.Fatalf("upstream received %s %s (Host %q) after an OPTIONS * upgrade request; statuses %v",
					got[0].Method, got[0].RequestURI, got[0].Host, statuses(rs))
			}
		})
	}
}

// ReadHeaderTimeout closes a connection that never finishes its header block.
func TestReadHeaderTimeout(t *testing.T) {
	h := startProxy(t, func(o *Options) { o.ReadHeaderTimeout = 50 * time.Millisecond })
	c := h.dial(t)
	if _, err := io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatalf("connection not closed: %v", err)
	}
	h.up.sawNothing(t)
}

// A denied request with Expect: 100-continue never gets a 100 Continue (PROXY.md §14),
// with or without the body's wrappers (a global body cap, the idle timeout): net/http
// drains a wrapped body after the handler, which sent the 100 before the 401.
func TestExpectContinue(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"defaults":          nil,
		"body cap":          func(o *Options) { o.MaxBodyBytes = 1 << 20 },
		"no idle, body cap": func(o *Options) { o.StreamIdleTimeout, o.MaxBodyBytes = -1, 1<<20 },
	} {
		t.Run(name, func(t *testing.T) {
			h := startProxy(t, mod)
			c := h.dial(t)
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("first response %d, want 401 without 100 Continue", res.StatusCode)
			}
			res.Body.Close()

			// Allowed: the 100 comes when the body is forwarded.
			c2 := h.dial(t)
			br = bufio.NewReader(c2)
			if _, err := io.WriteString(c2, "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			res, err = http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != http.StatusContinue {
				t.Fatalf("want 100 Continue, got %v %v", res, err)
			}
			if _, err := io.WriteString(c2, "hello"); err != nil {
				t.Fatal(err)
			}
			rs := readResponses(t, br)
			wantStatuses(t, rs, 200)
			if got := h.up.only(t).Body; got != "hello" {
				t.Errorf("upstream body %q", got)
			}
		})
	}
}

// On a route whose stages read the body, reading it is what sends the 100 Continue, so
// what the head settles is decided first: a request without credentials is denied
// without a 100 and without uploading its body; one with a credential gets the 100 and
// the full decision on its body (found by a second reader's review).
func TestExpectContinueOnBodyRoute(t *testing.T) {
	routes := []*engine.Route{{Name: "upload", Match: engine.Match{PathPrefix: "/upload/"}, Pipeline: &engine.Pipeline{
		Name: "upload", BodyLimit: 16,
		Authenticate: []engine.Stage{{Name: "apikey", Phase: engine.PhaseAuthenticate, Auth: apiKeyAuth}},
		Inspect:      []engine.Stage{{Name: "waf", Phase: engine.PhaseInspect, Filter: bodyFilter}}}}}
	tbl, err := engine.NewRouteTable(routes, engine.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := startProxy(t, func(o *Options) { o.Engine = engine.New(tbl) })
	expect := func(t *testing.T, key, body string) (first int, rs []rawResponse) {
		t.Helper()
		c := h.dial(t)
		head := "POST /upload/x HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(len(body)) +
			"\r\nExpect: 100-continue\r\nConnection: close\r\n"
		if key != "" {
			head += "X-Api-Key: " + key + "\r\n"
		}
		if _, err := io.WriteString(c, head+"\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusContinue {
			return res.StatusCode, nil
		}
		if _, err := io.WriteString(c, body); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, readResponses(t, br)
	}
	if first, _ := expect(t, "", "hello"); first != http.StatusUnauthorized {
		t.Fatalf("no credential: first response %d, want 401 without 100 Continue", first)
	}
	if first, _ := expect(t, "wrong-key", "hello"); first != http.StatusContinue {
		t.Fatalf("a credential, even a wrong one, is for the full decision: first response %d", first)
	}
	first, rs := expect(t, "good-key", "hello")
	if first != http.StatusContinue {
		t.Fatalf("good key: first response %d, want 100", first)
	}
	wantStatuses(t, rs, 200)
	if got := h.up.only(t).Body; got != "hello" {
		t.Errorf("upstream body %q", got)
	}
	if _, rs := expect(t, "good-key", "attack"); len(rs) != 1 || rs[0].StatusCode != http.StatusForbidden {
		t.Errorf("good key, attack body: %v, want 403 from the body stage", statuses(rs))
	}
}

// The upstream pool keeps enough idle connections for the concurrency (PROXY.md §17):
// a second wave of concurrent requests reuses the first wave's connections.
func TestUpstreamPoolReuse(t *testing.T) {
	const n = 32
	var mu sync.Mutex
	newConns := 0
	gate := make(chan struct{})
	var arrived sync.WaitGroup
	up := newUpstream(t, func(_ *recordingUpstream, s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				mu.Lock()
				newConns++
				mu.Unlock()
			}
		}
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived.Done()
			mu.Lock()
			g := gate
			mu.Unlock()
			<-g
		})
	})
	h := startProxyTo(t, up, up.URL, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	wave := func() {
		mu.Lock()
		gate = make(chan struct{})
		g := gate
		mu.Unlock()
		arrived.Add(n)
		var done sync.WaitGroup
		for range n {
			done.Go(func() {
				res, err := client.Get("http://" + h.addr + "/public/x")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			})
		}
		arrived.Wait() // all n are in flight upstream at once
		close(g)
		done.Wait()
	}
	wave()
	mu.Lock()
	first := newConns
	mu.Unlock()
	wave()
	mu.Lock()
	defer mu.Unlock()
	if first != n || newConns-first > n/2 {
		t.Errorf("upstream connections: %d in the first wave, %d new in the second (want %d, then reuse)", first, newConns-first, n)
	}
}
