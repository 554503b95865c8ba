package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// recorder is an upstream that records the headers of each request it serves.
type recorder struct {
	srv  *httptest.Server
	last chan http.Header
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{last: make(chan http.Header, 1024)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := req.Header.Clone()
		h.Set(":path", req.URL.RequestURI())
		select {
		case r.last <- h:
		default:
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) next(t *testing.T) http.Header {
	t.Helper()
	select {
	case h := <-r.last:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw no request")
		return nil
	}
}

func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-r.last:
		t.Fatalf("upstream saw a request that should have been denied: %v", h)
	default:
	}
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The README's three curl lines, through the reverse proxy.
func TestQuickstartProxy(t *testing.T) {
	up := newRecorder(t)
	s := startSidecar(t, repoPath("examples", "quickstart", "portcullis.yaml"), up.srv.URL)
	key := demoKey(t)
	base := "http://" + s.proxy

	resp, body := get(t, base+"/api/hello", nil)
	if resp.StatusCode != 401 || !strings.Contains(body, `"reason":"auth.missing"`) || resp.Header.Get("Www-Authenticate") == "" {
		t.Fatalf("no key: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	var deny struct {
		Error     string `json:"error"`
		Reason    string `json:"reason"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(body), &deny); err != nil || deny.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("deny body %q: %v", body, err)
	}
	up.none(t)

	resp, _ = get(t, base+"/api/hello", map[string]string{"X-API-Key": key, "X-Request-Id": "req-123"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "req-123" {
		t.Fatalf("demo key: %d %v", resp.StatusCode, resp.Header)
	}
	h := up.next(t)
	want := map[string]string{"X-Portcullis-Subject": "demo", "X-Portcullis-Auth": "apikey",
		"X-Portcullis-Key-Id": "8pvap8md", "X-Portcullis-Scopes": "demo:read demo:write", "X-Request-Id": "req-123"}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("upstream %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if h.Get("X-Api-Key") != "" {
		t.Errorf("the API key reached the upstream")
	}

	resp, _ = get(t, base+"/api/hello", map[string]string{"X-API-Key": key, "X-Portcullis-Subject": "admin",
		"X-Portcullis-Claim-Role": "root"})
	if resp.StatusCode != 200 {
		t.Fatalf("spoof: %d", resp.StatusCode)
	}
	h = up.next(t)
	if got := h.Values("X-Portcullis-Subject"); len(got) != 1 || got[0] != "demo" {
		t.Errorf("spoofed subject reached upstream: %q", got)
	}
	if h.Get("X-Portcullis-Claim-Role") != "" {
		t.Errorf("spoofed claim header reached upstream")
	}

	// A key in the query string authenticates nothing here (not a configured source) and
	// a wrong key is a 401 that never echoes the key.
	resp, body = get(t, base+"/api/hello", map[string]string{"X-API-Key": key[:len(key)-4] + "aaaa"})
	if resp.StatusCode != 401 || strings.Contains(body, key[:20]) {
		t.Fatalf("wrong key: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, base+"/elsewhere", map[string]string{"X-API-Key": key})
	if resp.StatusCode != 404 {
		t.Fatalf("no route: %d", resp.StatusCode)
	}
	resp, _ = get(t, base+"/health", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("public route: %d", resp.StatusCode)
	}
	up.next(t)

	// A denied upload with Expect: 100-continue gets its 401 without a 100 Continue and
	// without sending its body (PROXY.md §14), with the default body cap in place.
	c, err := net.DialTimeout("tcp", s.proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "POST /api/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("denied Expect: 100-continue: %v %v, want 401 first", resp, err)
	}
	up.none(t)

	if strings.Contains(s.logs.String(), key[12:]) {
		t.Fatal("the API key appears in the logs")
	}
}

func checkRequest(path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 5555}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "envoy-stream-1", Method: "GET", Path: path, Host: "api.example.com", Scheme: "https",
			Protocol: "HTTP/2", Headers: headers}},
	}}
}

// The same policy through Envoy's ext_authz API, with a client built from Envoy's protos.
func TestQuickstartExtAuthz(t *testing.T) {
	up := newRecorder(t)
	s := startSidecar(t, repoPath("examples", "quickstart", "portcullis.yaml"), up.srv.URL)
	key := demoKey(t)
	cc, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hs, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hs.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hs, err)
	}
	client := authv3.NewAuthorizationClient(cc)

	resp, err := client.Check(ctx, checkRequest("/api/hello?x=1", map[string]string{"x-request-id": "rid-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.Status.Code) == codes.OK || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("no key: %v", resp)
	}
	if !strings.Contains(resp.GetDeniedResponse().GetBody(), `"request_id":"rid-1"`) {
		t.Fatalf("deny body: %q", resp.GetDeniedResponse().GetBody())
	}
	if resp.DynamicMetadata == nil {
		t.Fatal("no dynamic metadata on deny")
	}

	resp, err = client.Check(ctx, checkRequest("/api/hello", map[string]string{
		"x-api-key": key, "x-portcullis-subject": "admin", "x-portcullis-issuer": "evil", "x-request-id": "rid-2"}))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if resp.Status.Code != 0 || ok == nil {
		t.Fatalf("demo key: %v", resp)
	}
	set := map[string]string{}
	for _, h := range ok.Headers {
		//lint:ignore SA1019 ENVOY.md §3: the deprecated append field is the one every Envoy version honours.
		if h.Append == nil {
			t.Errorf("header %s has append unset (ENVOY.md §3 rule 1)", h.Header.Key)
		}
		set[h.Header.Key] = h.Header.Value
	}
	if set["x-portcullis-subject"] != "demo" || set["x-portcullis-auth"] != "apikey" {
		t.Errorf("identity headers: %v", set)
	}
	removed := map[string]bool{}
	for _, r := range ok.HeadersToRemove {
		removed[r] = true
		if _, both := set[r]; both {
			t.Errorf("%s both set and removed", r)
		}
	}
	if !removed["x-portcullis-issuer"] || !removed["x-api-key"] {
		t.Errorf("headers_to_remove = %v", ok.HeadersToRemove)
	}
	md := resp.DynamicMetadata.AsMap()
	if md["subject"] != "demo" {
		t.Errorf("dynamic metadata: %v", md)
	}
}
