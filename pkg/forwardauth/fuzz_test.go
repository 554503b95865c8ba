package forwardauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

func FuzzRequestFromForward(f *testing.F) {
	f.Add("10.0.0.5:1", "GET", "/api/items?x=1", "api.example.com", "https", "198.51.100.7, 10.0.0.1", "", "req-1")
	f.Add("203.0.113.1:2", "DELETE", "/a/../b//c", "", "HTTPS ", "junk", "/x", "bad id")
	f.Add("[::ffff:10.0.0.1]:3", "", "", "h:1", "ftp", "", "/%zz", "")
	f.Add("@", "PUT", "http://evil/x", "", "", "", "relative", "")
	f.Fuzz(func(t *testing.T, remote, method, uri, host, proto, xff, origURI, id string) {
		req := httptest.NewRequest(http.MethodGet, "/auth", nil)
		req.RemoteAddr = remote
		for k, v := range map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Uri": uri,
			"X-Forwarded-Host": host, "X-Forwarded-Proto": proto, "X-Forwarded-For": xff,
			"X-Original-Uri": origURI, "X-Request-Id": id} {
			req.Header[k] = []string{v}
		}
		er := &engine.Request{}
		fromProxy, err := requestFromForward(er, req, trusted)
		if !telemetry.ValidRequestID(er.ID) {
			t.Fatalf("request id %q", er.ID)
		}
		if er.Scheme != "http" && er.Scheme != "https" {
			t.Fatalf("scheme %q", er.Scheme)
		}
		if !fromProxy && (er.Method != http.MethodGet || er.RawPath != "/auth") {
			t.Fatalf("untrusted peer chose method %q path %q", er.Method, er.RawPath)
		}
		if err == nil && !strings.HasPrefix(er.Path, "/") {
			t.Fatalf("path %q", er.Path)
		}
		var body map[string]string
		if err := json.Unmarshal(errorBody(method, uri, er.ID), &body); err != nil {
			t.Fatalf("deny body: %v", err)
		}
	})
}
