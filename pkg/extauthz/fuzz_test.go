package extauthz

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

func FuzzRequestFromCheck(f *testing.F) {
	f.Add("/api/items?x=1", "x-request-id", "req-1", "10.0.0.1, 198.51.100.7", "10.1.1.1", []byte("body"), "true", "GET")
	f.Add("/a/../%2e%2E/b//c", "X-Portcullis-Subject", "mallory", "junk,,", "2001:db8::1", []byte{0xff}, "false", "POST")
	f.Add("relative", "", "", "", "", []byte(nil), "", "")
	f.Add("/%zz?", "x-envoy-auth-partial-body", " TRUE ", "::ffff:10.0.0.1", "::ffff:10.0.0.2", []byte{}, "x", "get")
	f.Fuzz(func(t *testing.T, path, hk, hv, xff, src string, body []byte, partial, method string) {
		cr := checkRequest(src, path, map[string]string{
			hk: hv, "x-forwarded-for": xff, "x-envoy-auth-partial-body": partial,
		}, func(a *authv3.AttributeContext) {
			a.Request.Http.Method, a.Request.Http.RawBody = method, body
		})
		st := &checkState{}
		err := requestFromCheck(st, cr, trustedNets, clock)
		r := &st.req
		if !telemetry.ValidRequestID(r.ID) {
			t.Fatalf("invalid request id %q", r.ID)
		}
		if err == nil {
			if !strings.HasPrefix(r.Path, "/") {
				t.Fatalf("path %q accepted without a leading slash", r.Path)
			}
			target := r.RawPath
			if strings.Contains(path, "?") {
				target += "?" + r.RawQuery
			}
			if target != path {
				t.Fatalf("raw path %q + query %q do not rebuild %q", r.RawPath, r.RawQuery, path)
			}
		}
		for k := range r.Header {
			if strings.ToLower(k) == "x-forwarded-for" && k != "X-Forwarded-For" {
				t.Fatalf("non-canonical key %q", k)
			}
		}
		if r.Peer.IP.IsValid() != r.Peer.Direct.IsValid() {
			t.Fatalf("peer ip %v with direct %v", r.Peer.IP, r.Peer.Direct)
		}
		d := engine.Decision{Status: 403, Reason: "fuzz", Message: hv}
		assertHeaderRules(t, checkResponse(r, &d, st.generatedID))
		st.reset()
	})
}

func FuzzErrorBody(f *testing.F) {
	f.Add("credentials required", "auth.missing", "req-1")
	f.Add("\"quoted\" <b>&\\", "x", "")
	f.Add("\xff\xfe\x00\x1f\u2028", "\x7f", "é")
	f.Fuzz(func(t *testing.T, msg, reason, id string) {
		var got map[string]string
		if err := json.Unmarshal([]byte(errorBody(msg, reason, id)), &got); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		for k, want := range map[string]string{"error": msg, "reason": reason, "request_id": id} {
			if !utf8.ValidString(want) {
				if !utf8.ValidString(got[k]) {
					t.Fatalf("%s: invalid UTF-8 out", k)
				}
				continue
			}
			if got[k] != want {
				t.Fatalf("%s = %q, want %q", k, got[k], want)
			}
		}
	})
}
