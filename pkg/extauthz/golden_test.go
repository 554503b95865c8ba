package extauthz

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis/portcullis/pkg/engine"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// checkGolden compares got with testdata/name.golden (rewriting it under -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var (
	trustedNets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	fixedNow    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func clock() time.Time { return fixedNow }

// checkRequest builds a CheckRequest from the parts the tests vary.
func checkRequest(source, path string, headers map[string]string, mutate ...func(*authv3.AttributeContext)) *authv3.CheckRequest {
	a := &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50123}},
		}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 5, 6, 7, 8, 9, 123, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1234567890", Method: "GET", Path: path, Host: "api.example.com",
				Scheme: "https", Protocol: "HTTP/2", Size: -1, Headers: headers,
			},
		},
	}
	for _, m := range mutate {
		m(a)
	}
	return &authv3.CheckRequest{Attributes: a}
}

// requestCases are representative CheckRequests, shared by the golden and fuzz tests.
func requestCases() map[string]*authv3.CheckRequest {
	return map[string]*authv3.CheckRequest{
		"get_query": checkRequest("203.0.113.9", "/api/items?limit=10&api_key=x", map[string]string{
			":authority": "api.example.com", "x-request-id": "req-1", "authorization": "Bearer alice-token",
			"accept": "application/json", "x-custom-thing": "v",
		}),
		"trusted_xff_mtls": checkRequest("10.1.2.3", "/api/items", map[string]string{
			"x-request-id": "req-2", "x-forwarded-for": "198.51.100.7, 10.9.9.9, 10.1.2.3",
		}, func(a *authv3.AttributeContext) {
			a.Source.Principal = "spiffe://cluster.local/ns/default/sa/web"
			a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "api.example.com"}
		}),
		"untrusted_xff": checkRequest("203.0.113.9", "/api/items", map[string]string{
			"x-request-id": "req-3", "x-forwarded-for": "10.0.0.1",
		}),
		"dirty_path": checkRequest("203.0.113.9", "/public/./a/../%7Euser//files%2e?q=%2F", map[string]string{"x-request-id": "req-4"}),
		"bad_path":   checkRequest("203.0.113.9", "/files/..%2Fetc/passwd", map[string]string{"x-request-id": "req-5"}),
		"generated_id": checkRequest("2001:db8::1", "/", map[string]string{
			"x-request-id": "bad id with spaces", "x-portcullis-subject": "mallory",
		}),
		"raw_headers": checkRequest("203.0.113.9", "/api/x", nil, func(a *authv3.AttributeContext) {
			a.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "x-request-id", RawValue: []byte("req-6")},
				{Key: "cookie", RawValue: []byte("a=1")},
				{Key: "cookie", RawValue: []byte("b=2")},
				{Key: "x-bin", RawValue: []byte{0xff, 'o', 'k'}},
			}}
		}),
		"raw_body": checkRequest("203.0.113.9", "/body/upload", map[string]string{
			"x-request-id": "req-7", "x-envoy-auth-partial-body": "false", "content-length": "4",
		}, func(a *authv3.AttributeContext) {
			a.Request.Http.Method, a.Request.Http.Size = "POST", 4
			a.Request.Http.RawBody = []byte{0x00, 0xff, 'h', 'i'}
		}),
		"partial_body": checkRequest("203.0.113.9", "/body/upload", map[string]string{
			"x-request-id": "req-8", "x-envoy-auth-partial-body": "true",
		}, func(a *authv3.AttributeContext) {
			a.Request.Http.Method = "POST"
			a.Request.Http.Body = `{"partial":`
		}),
		"http1_no_body": checkRequest("203.0.113.9", "/body/x", map[string]string{"x-request-id": "req-9"},
			func(a *authv3.AttributeContext) { a.Request.Http.Protocol = "HTTP/1.1" }),
		"h2_empty_declared": checkRequest("203.0.113.9", "/body/x", map[string]string{"x-request-id": "req-12", "content-length": "0"},
			func(a *authv3.AttributeContext) { a.Request.Http.Method, a.Request.Http.Size = "POST", 0 }),
		"h2_size_zero_unknown": checkRequest("203.0.113.9", "/body/x", map[string]string{"x-request-id": "req-13"},
			func(a *authv3.AttributeContext) { a.Request.Http.Method, a.Request.Http.Size = "POST", 0 }),
		"route_extension": checkRequest("203.0.113.9", "/whatever", map[string]string{"x-request-id": "req-10"},
			func(a *authv3.AttributeContext) {
				a.ContextExtensions = map[string]string{"route": "named", "other": "x"}
			}),
		"route_metadata": checkRequest("203.0.113.9", "/whatever", map[string]string{"x-request-id": "req-11"},
			func(a *authv3.AttributeContext) {
				a.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
					"portcullis": {Fields: map[string]*structpb.Value{"route": structpb.NewStringValue("named")}},
				}}
			}),
		"no_http": {Attributes: &authv3.AttributeContext{}},
		"empty":   {},
	}
}

// describeRequest renders r in a stable text form for golden files.
func describeRequest(st *checkState, err error) string {
	r := &st.req
	var b strings.Builder
	id := r.ID
	if st.generatedID {
		id = fmt.Sprintf("<generated, %d chars>", len(r.ID))
	}
	fmt.Fprintf(&b, "error: %v\nid: %s\nroute: %q\nmethod: %q\nscheme: %q\nhost: %q\n", err, id, r.Route, r.Method, r.Scheme, r.Host)
	fmt.Fprintf(&b, "path: %q\nraw_path: %q\nraw_query: %q\n", r.Path, r.RawPath, r.RawQuery)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "header %s: %q\n", k, r.Header[k])
	}
	fmt.Fprintf(&b, "body: %q\nhas_body: %v\nbody_truncated: %v\n", r.Body, r.HasBody, r.BodyTruncated)
	fmt.Fprintf(&b, "peer: ip=%v direct=%v tls=%v principal=%q\n", r.Peer.IP, r.Peer.Direct, r.Peer.TLS, r.Peer.Principal)
	fmt.Fprintf(&b, "received: %s\n", r.Received.Format(time.RFC3339Nano))
	return b.String()
}

func TestRequestFromCheckGolden(t *testing.T) {
	for name, cr := range requestCases() {
		t.Run(name, func(t *testing.T) {
			st := &checkState{}
			err := requestFromCheck(st, cr, trustedNets, clock)
			checkGolden(t, "request_"+name, describeRequest(st, err))
		})
	}
}

// TestRequestFromCheckReuse translates requests through one pooled state and checks
// nothing leaks from one request into the next.
func TestRequestFromCheckReuse(t *testing.T) {
	st := &checkState{}
	cases := requestCases()
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range cases {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		fresh := &checkState{}
		errFresh := requestFromCheck(fresh, cases[name], trustedNets, clock)
		err := requestFromCheck(st, cases[name], trustedNets, clock)
		if got, want := describeRequest(st, err), describeRequest(fresh, errFresh); got != want && !fresh.generatedID {
			t.Errorf("%s: reused state differs:\n%s\nwant\n%s", name, got, want)
		}
		st.reset()
	}
}

// responseCases are representative decisions for checkResponse.
func responseCases() map[string]struct {
	id        string
	generated bool
	d         engine.Decision
} {
	type rc = struct {
		id        string
		generated bool
		d         engine.Decision
	}
	allow := engine.Decision{
		Allow: true, Status: 200, Route: "api", DecidedBy: "",
		Identity: alice,
		Upstream: engine.HeaderOps{
			Set: []engine.HeaderValue{
				{Name: "x-portcullis-subject", Value: "alice"}, {Name: "x-portcullis-auth", Value: "apikey"},
				{Name: "x-tag", Value: "one"}, {Name: "x-tag", Value: "two"}, {Name: "X-Mixed-Case", Value: "v"},
			},
			Remove:      []string{"x-portcullis-claim-admin", "authorization"},
			RemoveQuery: []string{"api_key"},
		},
		Response: http.Header{"X-Frame-Options": {"DENY"}, "Vary": {"Origin", "Accept"}},
	}
	overlap := allow
	overlap.Upstream.Remove = []string{"x-portcullis-subject", "x-other"}
	overlap.Response = nil
	return map[string]rc{
		"allow":              {id: "req-1", d: allow},
		"allow_generated_id": {id: "0f8fad5b-d9cb-469f-a165-70867728950e", generated: true, d: allow},
		"allow_overlap":      {id: "req-2", d: overlap},
		"deny_401": {id: "req-3", d: engine.Decision{
			Status: 401, Reason: "auth.missing", Message: `credentials "required"`, DecidedBy: "authenticate", Route: "api",
			Response: http.Header{"Www-Authenticate": {`Bearer realm="api"`, `ApiKey realm="api"`}},
		}},
		"deny_429": {id: "req-4", d: engine.Decision{
			Status: 429, Reason: "ratelimit.over", Message: "slow down", DecidedBy: "limit", Route: "slow",
			Identity: alice, Response: http.Header{"Retry-After": {"7"}},
		}},
		"deny_zero_status":   {id: "req-5", d: engine.Decision{}},
		"deny_undefined_4xx": {id: "req-6", d: engine.Decision{Status: 499, Reason: "x", Message: "<script>"}},
		"deny_undefined_5xx": {id: "req-7", d: engine.Decision{Status: 599, Reason: "y", Message: "m\u00e9\xff"}},
	}
}

// describeResponse renders a CheckResponse as sorted, indented JSON (protojson's own
// output varies its whitespace on purpose).
func describeResponse(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	raw, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCheckResponseGolden(t *testing.T) {
	for name, c := range responseCases() {
		t.Run(name, func(t *testing.T) {
			r := &engine.Request{ID: c.id}
			resp := checkResponse(r, &c.d, c.generated)
			checkGolden(t, "response_"+name, describeResponse(t, resp))
			assertHeaderRules(t, resp)
		})
	}
}

// assertHeaderRules checks ENVOY.md §3 on any response: append always explicit, first
// entry of a name append=false, lowercase keys, no name both set and removed.
func assertHeaderRules(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	check := func(where string, opts []*corev3.HeaderValueOption) map[string]bool {
		names := map[string]bool{}
		for _, o := range opts {
			k := o.GetHeader().GetKey()
			if k != strings.ToLower(k) {
				t.Errorf("%s: key %q is not lowercase", where, k)
			}
			//lint:ignore SA1019 the deprecated append flag is the one we must set (ENVOY.md §3).
			app := o.GetAppend()
			if app == nil {
				t.Errorf("%s: %s has append unset", where, k)
			} else if app.GetValue() != names[k] {
				t.Errorf("%s: %s append=%v, want %v", where, k, app.GetValue(), names[k])
			}
			names[k] = true
		}
		return names
	}
	if ok := resp.GetOkResponse(); ok != nil {
		set := check("headers", ok.GetHeaders())
		for _, name := range ok.GetHeadersToRemove() {
			if set[strings.ToLower(name)] {
				t.Errorf("%s is both set and removed", name)
			}
		}
		check("response_headers_to_add", ok.GetResponseHeadersToAdd())
	}
	if dn := resp.GetDeniedResponse(); dn != nil {
		check("denied headers", dn.GetHeaders())
		var body map[string]string
		if err := json.Unmarshal([]byte(dn.GetBody()), &body); err != nil {
			t.Errorf("deny body is not JSON: %v: %s", err, dn.GetBody())
		}
	}
	if resp.GetDynamicMetadata() == nil {
		t.Error("no dynamic_metadata")
	}
}
