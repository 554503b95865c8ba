package extauthz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// startServer serves s on a loopback listener with ServerOptions(maxBody) and the
// health service, and returns a connection built the way Envoy's proto clients are.
func startServer(t testing.TB, s *Server, maxBody int) *grpc.ClientConn {
	t.Helper()
	return startServerWith(t, s.Register, maxBody)
}

// startServerWith is startServer for any service registration.
func startServerWith(t testing.TB, register func(*grpc.Server), maxBody int) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(ServerOptions(maxBody)...)
	register(g)
	RegisterHealth(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		g.Stop()
		<-done
	})
	return conn
}

func newTestServer(t testing.TB, e *engine.Engine) *Server {
	log := zap.NewNop()
	return New(Options{
		Engine: e, TrustedProxies: trustedNets, Logger: log,
		Log: telemetry.NewDecisionLog(log), Audit: telemetry.NewAudit(log),
	})
}

func check(t *testing.T, c authv3.AuthorizationClient, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	assertHeaderRules(t, resp)
	md := resp.GetDynamicMetadata().GetFields()
	for _, k := range []string{MetadataDecisionID, MetadataSubject, MetadataAuthMethod, MetadataRoute, MetadataAllow, MetadataReason} {
		if _, ok := md[k]; !ok {
			t.Errorf("dynamic_metadata lacks %q", k)
		}
	}
	return resp
}

// upstream returns the ok_response headers as name -> values in order.
func upstream(resp *authv3.CheckResponse) map[string][]string {
	m := map[string][]string{}
	for _, o := range resp.GetOkResponse().GetHeaders() {
		m[o.GetHeader().GetKey()] = append(m[o.GetHeader().GetKey()], o.GetHeader().GetValue())
	}
	return m
}

func TestCheckOverGRPC(t *testing.T) {
	conn := startServer(t, newTestServer(t, newTestEngine(t)), 8<<20)
	c := authv3.NewAuthorizationClient(conn)

	t.Run("allow sets identity and removes spoofed headers", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/api/items?api_key=x&q=1", map[string]string{
			"x-request-id": "req-a", "authorization": "Bearer alice-token",
			"x-portcullis-subject": "mallory", "x-portcullis-claim-admin": "true",
		}))
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("status %v, want OK", resp.GetStatus())
		}
		up := upstream(resp)
		if got := up["x-portcullis-subject"]; len(got) != 1 || got[0] != "alice" {
			t.Errorf("subject = %q, want [alice]", got)
		}
		if got := up["x-portcullis-scopes"]; len(got) != 1 || got[0] != "invoices:read invoices:write" {
			t.Errorf("scopes = %q", got)
		}
		if got := up["x-tag"]; len(got) != 2 {
			t.Errorf("x-tag = %q, want two values", got)
		}
		rm := resp.GetOkResponse().GetHeadersToRemove()
		if !contains(rm, "x-portcullis-claim-admin") || !contains(rm, "authorization") {
			t.Errorf("headers_to_remove = %q, want the spoofed claim and the consumed credential", rm)
		}
		if contains(rm, "x-portcullis-subject") {
			t.Error("x-portcullis-subject is both overwritten and removed")
		}
		if q := resp.GetOkResponse().GetQueryParametersToRemove(); len(q) != 1 || q[0] != "api_key" {
			t.Errorf("query_parameters_to_remove = %q", q)
		}
		md := resp.GetDynamicMetadata().GetFields()
		if md[MetadataSubject].GetStringValue() != "alice" || !md[MetadataAllow].GetBoolValue() ||
			md[MetadataDecisionID].GetStringValue() != "req-a" || md[MetadataAuthMethod].GetStringValue() != "apikey" {
			t.Errorf("dynamic_metadata = %v", md)
		}
	})

	t.Run("missing credentials deny with JSON and challenges", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/api/items", map[string]string{"x-request-id": "req-b"}))
		if resp.GetStatus().GetCode() != int32(codes.PermissionDenied) {
			t.Fatalf("status %v, want PERMISSION_DENIED", resp.GetStatus())
		}
		dn := resp.GetDeniedResponse()
		if dn.GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
			t.Errorf("http status %v, want 401", dn.GetStatus().GetCode())
		}
		var challenges []string
		for _, h := range dn.GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				challenges = append(challenges, h.GetHeader().GetValue())
			}
		}
		if len(challenges) != 2 {
			t.Errorf("www-authenticate = %q, want both challenges", challenges)
		}
		var body struct{ Error, Reason, RequestID string }
		if err := json.Unmarshal([]byte(dn.GetBody()), &body); err != nil {
			t.Fatal(err)
		}
		if body.Reason != "auth.missing" || body.Error == "" {
			t.Errorf("body = %s", dn.GetBody())
		}
		if !bytes.Contains([]byte(dn.GetBody()), []byte(`"request_id":"req-b"`)) {
			t.Errorf("body lacks the request id: %s", dn.GetBody())
		}
		if md := resp.GetDynamicMetadata().GetFields(); md[MetadataAllow].GetBoolValue() || md[MetadataReason].GetStringValue() != "auth.missing" {
			t.Errorf("dynamic_metadata = %v", md)
		}
	})

	t.Run("invalid credential denies even with spoofed identity", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/api/items", map[string]string{
			"authorization": "Bearer forged", "x-portcullis-subject": "alice", "x-portcullis-auth": "apikey",
		}))
		if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
			t.Fatalf("got %v, want a 401 deny", resp)
		}
	})

	t.Run("rate limit deny carries Retry-After", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/slow/x", nil))
		dn := resp.GetDeniedResponse()
		if dn.GetStatus().GetCode() != typev3.StatusCode_TooManyRequests || !hasHeader(dn.GetHeaders(), "retry-after", "7") {
			t.Errorf("got %v", dn)
		}
	})

	t.Run("context_extensions select the route", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/unmatched", nil, func(a *authv3.AttributeContext) {
			a.ContextExtensions = map[string]string{"route": "named"}
		}))
		if resp.GetStatus().GetCode() != 0 || resp.GetDynamicMetadata().GetFields()[MetadataRoute].GetStringValue() != "named" {
			t.Errorf("got %v, want allow on route named", resp)
		}
		resp = check(t, c, checkRequest("203.0.113.9", "/unmatched", nil))
		if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_NotFound {
			t.Errorf("without the extension: %v, want 404", resp)
		}
	})

	t.Run("invalid path is a 400 deny", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/api/..%2fadmin", nil))
		if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_BadRequest {
			t.Errorf("got %v, want 400", resp)
		}
	})

	t.Run("generated request id goes upstream and back", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/never", map[string]string{"x-request-id": "no spaces allowed"},
			func(a *authv3.AttributeContext) { a.ContextExtensions = map[string]string{"route": "named"} }))
		id := upstream(resp)["x-request-id"]
		if len(id) != 1 || !telemetry.ValidRequestID(id[0]) || !hasHeader(resp.GetOkResponse().GetResponseHeadersToAdd(), "x-request-id", id[0]) {
			t.Errorf("x-request-id upstream %q, response %v", id, resp.GetOkResponse().GetResponseHeadersToAdd())
		}
	})
}

func TestCheckBodies(t *testing.T) {
	conn := startServer(t, newTestServer(t, newTestEngine(t)), 8<<20)
	c := authv3.NewAuthorizationClient(conn)
	big := bytes.Repeat([]byte{0xfe, 'x', 0x00}, 2<<20) // 6 MiB: over gRPC's 4 MiB default
	cases := []struct {
		name      string
		raw       []byte
		text      string
		partial   string
		wantBody  []byte
		wantTrunc bool
	}{
		{name: "raw bytes", raw: []byte{0, 0xff, 0x80, 'a'}, partial: "false", wantBody: []byte{0, 0xff, 0x80, 'a'}},
		{name: "text", text: `{"a":"é"}`, partial: "false", wantBody: []byte(`{"a":"é"}`)},
		{name: "partial", text: "trunc", partial: "true", wantBody: []byte("trunc"), wantTrunc: true},
		{name: "large", raw: big, partial: "false", wantBody: big},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, c, checkRequest("203.0.113.9", "/body/up", map[string]string{"x-envoy-auth-partial-body": tc.partial},
				func(a *authv3.AttributeContext) {
					a.Request.Http.Method = "POST"
					a.Request.Http.RawBody, a.Request.Http.Body = tc.raw, tc.text
				}))
			up := upstream(resp)
			sum := sha256.Sum256(tc.wantBody)
			want := map[string]string{
				"x-body-len": strconv.Itoa(len(tc.wantBody)), "x-body-sha256": hex.EncodeToString(sum[:]),
				"x-body-has": "true", "x-body-truncated": strconv.FormatBool(tc.wantTrunc),
			}
			for k, v := range want {
				if got := up[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	t.Run("no body sent", func(t *testing.T) {
		resp := check(t, c, checkRequest("203.0.113.9", "/body/up", nil))
		if got := upstream(resp)["x-body-has"]; len(got) != 1 || got[0] != "false" {
			t.Errorf("x-body-has = %q, want false", got)
		}
	})
}

func TestCheckOverLimitIsRejectedByGRPC(t *testing.T) {
	conn := startServer(t, newTestServer(t, newTestEngine(t)), 0)
	c := authv3.NewAuthorizationClient(conn)
	req := checkRequest("203.0.113.9", "/body/up", nil)
	req.Attributes.Request.Http.RawBody = make([]byte, 5<<20)
	_, err := c.Check(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
}

// A request with more headers than the bound is denied 431 over gRPC, on Register's
// wire path, before its headers are copied.
func TestCheckTooManyHeadersDenied(t *testing.T) {
	conn := startServer(t, newTestServer(t, newTestEngine(t)), 0)
	c := authv3.NewAuthorizationClient(conn)
	h := map[string]string{}
	for i := range maxHeaders + 1 {
		h[fmt.Sprintf("x-h-%d", i)] = "v"
	}
	resp := check(t, c, checkRequest("203.0.113.9", "/api/x", h))
	dn := resp.GetDeniedResponse()
	if dn.GetStatus().GetCode() != typev3.StatusCode_RequestHeaderFieldsTooLarge {
		t.Fatalf("status %v, want 431 (%v)", dn.GetStatus().GetCode(), resp)
	}
}

func TestNotReadyIsUnavailable(t *testing.T) {
	conn := startServer(t, newTestServer(t, engine.New(nil)), 0)
	c := authv3.NewAuthorizationClient(conn)
	_, err := c.Check(context.Background(), checkRequest("203.0.113.9", "/api/x", nil))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable (so failure_mode_allow applies)", err)
	}
}

func TestHealthServing(t *testing.T) {
	conn := startServer(t, newTestServer(t, newTestEngine(t)), 0)
	h := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("%q: %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q: %v, want SERVING", svc, resp.GetStatus())
		}
	}
}

func TestRecvLimit(t *testing.T) {
	for _, tc := range []struct{ body, want int }{
		{0, minRecvBytes}, {-5, minRecvBytes}, {1 << 20, minRecvBytes}, {16 << 20, 16<<20 + recvHeadroom},
	} {
		if got := recvLimit(tc.body); got != tc.want {
			t.Errorf("recvLimit(%d) = %d, want %d", tc.body, got, tc.want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasHeader(opts []*corev3.HeaderValueOption, k, v string) bool {
	for _, o := range opts {
		if o.GetHeader().GetKey() == k && o.GetHeader().GetValue() == v {
			return true
		}
	}
	return false
}

// TestDecideNeverSetsAndRemoves checks the engine contract checkResponse relies on:
// no header name is both in Upstream.Set and Upstream.Remove, for spoofed requests.
func TestDecideNeverSetsAndRemoves(t *testing.T) {
	e := newTestEngine(t)
	for _, hdr := range []map[string]string{
		{"authorization": "Bearer alice-token", "x-portcullis-subject": "m", "x-portcullis-auth": "jwt", "x-portcullis-scopes": "admin", "x-portcullis-x": "1"},
		{"authorization": "Bearer alice-token", "X-PORTCULLIS-KEY-ID": "k9", "x-tag": "spoof"},
	} {
		st := &checkState{}
		if err := requestFromCheck(st, checkRequest("203.0.113.9", "/api/items", hdr), nil, clock); err != nil {
			t.Fatal(err)
		}
		d := e.Decide(context.Background(), &st.req)
		if !d.Allow {
			t.Fatalf("deny %s", d.Reason)
		}
		for _, rm := range d.Upstream.Remove {
			for _, s := range d.Upstream.Set {
				if strings.EqualFold(rm, s.Name) {
					t.Errorf("%s is both set and removed", rm)
				}
			}
		}
		if len(d.Upstream.Remove) == 0 {
			t.Error("spoofed headers not removed")
		}
	}
}

func TestCanceledCheckReturnsContextError(t *testing.T) {
	s := newTestServer(t, newTestEngine(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Check(ctx, checkRequest("203.0.113.9", "/api/items", map[string]string{"authorization": "Bearer alice-token"}))
	if status.Code(err) != codes.Canceled {
		t.Fatalf("err = %v, want Canceled", err)
	}
}

// TestConcurrentChecksDoNotMix drives parallel streams through the pooled request
// state and checks every answer belongs to its own request.
func TestConcurrentChecksDoNotMix(t *testing.T) {
	conn := startServer(t, newTestServer(t, newTestEngine(t)), 0)
	c := authv3.NewAuthorizationClient(conn)
	const workers, each = 8, 40
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				id := "req-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				hdr := map[string]string{"x-request-id": id}
				path := "/body/x"
				if i%2 == 0 {
					hdr["authorization"] = "Bearer alice-token"
					path = "/api/x"
				}
				req := checkRequest("203.0.113.9", path, hdr, func(a *authv3.AttributeContext) {
					a.Request.Http.Body = id
				})
				resp, err := c.Check(context.Background(), req)
				if err != nil {
					errs <- err
					return
				}
				md := resp.GetDynamicMetadata().GetFields()
				if md[MetadataDecisionID].GetStringValue() != id {
					errs <- fmt.Errorf("answer for %s carries id %s", id, md[MetadataDecisionID].GetStringValue())
					return
				}
				if got := upstream(resp)["x-body-len"]; i%2 == 1 && (len(got) != 1 || got[0] != strconv.Itoa(len(id))) {
					errs <- fmt.Errorf("%s: body of another request", id)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
