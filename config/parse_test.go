package config

import (
	"crypto/sha256"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadValidFull(t *testing.T) {
	doc, err := Load("testdata/valid_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Source != "testdata/valid_full.yaml" {
		t.Errorf("Source = %q", doc.Source)
	}
	if got := doc.Listeners; got != (Listeners{"127.0.0.1:8000", "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}) {
		t.Errorf("Listeners = %+v", got)
	}
	if doc.Upstream.Timeouts.IdleConn != time.Minute || doc.Upstream.MaxIdleConnsPerHost != 64 {
		t.Errorf("Upstream = %+v", doc.Upstream)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(doc.Network.TrustedProxies, wantProxies) {
		t.Errorf("TrustedProxies = %v", doc.Network.TrustedProxies)
	}
	if doc.Default != (DefaultRoute{Policy: "public"}) {
		t.Errorf("Default = %+v", doc.Default)
	}
	k := doc.Providers.APIKeys[0]
	if k.ID != "k7f3a9c2" || k.Hash.Algorithm != HashSHA512 || len(k.Hash.Sum) != 64 ||
		!k.Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || k.Pos.Line != 28 {
		t.Errorf("key = %+v", k)
	}
	if got := doc.PolicyNames(); !reflect.DeepEqual(got, []string{"api", "public"}) {
		t.Errorf("PolicyNames = %v", got)
	}
	api := doc.Policies["api"]
	if api.Name != "api" || api.Pos.Line != 39 || api.AuthMode != AuthModeAny {
		t.Errorf("policy = %+v", api)
	}
	ip, ok := api.Inspect[0].Spec.(*IPStage)
	if !ok || !api.Inspect[0].Shadow || api.Inspect[0].OnError != OnErrorDeny || len(ip.Deny) != 1 {
		t.Errorf("inspect[0] = %+v", api.Inspect[0])
	}
	st := api.Authenticate[0]
	ak, ok := st.Spec.(*APIKeyStage)
	if !ok || st.Kind != "apikey" || st.Pos != (Position{Path: "policies.api.authenticate[0]", Line: 45, Col: 9}) {
		t.Fatalf("authenticate[0] = %+v", st)
	}
	wantSources := []APIKeySource{{Header: "X-API-Key"}, {Query: "api_key"}, {Bearer: true}}
	if !reflect.DeepEqual(ak.Sources, wantSources) || !reflect.DeepEqual(ak.Keys, []string{"k7f3a9c2"}) {
		t.Errorf("apikey = %+v", ak)
	}
	if sc, ok := api.Authorize[0].Spec.(*ScopesStage); !ok || sc.Any[0] != "invoices:read" || sc.All[0] != "invoices:write" {
		t.Errorf("authorize[0] = %+v", api.Authorize[0])
	}
	if api.Authorize[1].OnError != OnErrorAllow {
		t.Errorf("authorize[1].on_error = %q", api.Authorize[1].OnError)
	}
	r := doc.Routes[0]
	if r.Pos.Line != 59 || !r.Match.Path.CaseInsensitive || r.Match.Path.Prefix != "/api/" || len(r.Match.Headers) != 3 {
		t.Errorf("route = %+v", r)
	}
	re, err := doc.Routes[1].Match.Path.CompileRegex()
	if err != nil || !re.MatchString("/v2/x") || re.MatchString("/x/v2/") {
		t.Errorf("path regex = %v, %v", re, err)
	}
}

func TestDefaults(t *testing.T) {
	doc, err := Parse("min.yaml", []byte("upstream: {url: http://127.0.0.1:8080}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Upstream.URL = "http://127.0.0.1:8080"
	want.Default.Status = 404
	want.Source = "min.yaml"
	want.Digest = sha256.Sum256([]byte("upstream: {url: http://127.0.0.1:8080}\n"))
	want.pos, want.failed, want.failedBelow = doc.pos, doc.failed, doc.failedBelow
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("got %+v\nwant %+v", doc, want)
	}
	if doc.Listeners.ForwardAuth != "" || doc.Server.MaxBodyBytes != 10485760 || doc.Identity.HeaderPrefix != "x-portcullis-" {
		t.Errorf("defaults: %+v", doc)
	}
}

func TestStageDefaults(t *testing.T) {
	src := `
listeners: {proxy: ""}
providers:
  apikeys: [{id: abcd, subject: s, hash: "sha512:` + strings.Repeat("ab", 64) + `"}]
policies:
  p:
    authenticate: [{apikey: {}}, {apikey: ~}]
`
	doc, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range doc.Policies["p"].Authenticate {
		ak := st.Spec.(*APIKeyStage)
		want := []APIKeySource{{Bearer: true}, {Header: "X-API-Key"}}
		if !reflect.DeepEqual(ak.Sources, want) || ak.Keys != nil || ak.ForwardCredentials || st.OnError != OnErrorDeny {
			t.Errorf("stage = %+v, spec %+v", st, ak)
		}
	}
}

// TestEmptyListenerDisables: an explicit empty address switches a listener off, and
// without the proxy listener no upstream is needed.
func TestEmptyListenerDisables(t *testing.T) {
	doc, err := Parse("t.yaml", []byte("listeners: {proxy: \"\", grpc: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Listeners.Proxy != "" || doc.Listeners.GRPC != "" || doc.Listeners.Admin != "127.0.0.1:9002" {
		t.Errorf("listeners = %+v", doc.Listeners)
	}
}

func TestDocumentErrorf(t *testing.T) {
	doc, err := Load("testdata/valid_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"policies.api.authenticate[0]", "testdata/valid_full.yaml:45:9: policies.api.authenticate[0]: boom"},
		{"routes[2].match.path.exact", "testdata/valid_full.yaml:76:21: routes[2].match.path.exact: boom"},
		// not written: the nearest written parent's position
		{"routes[2].match.methods", "testdata/valid_full.yaml:76:7: routes[2].match.methods: boom"},
		{"store", "testdata/valid_full.yaml:2:1: store: boom"},
	}
	for _, tt := range tests {
		if got := doc.Errorf(tt.path, "boom").Error(); got != tt.want {
			t.Errorf("Errorf(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Fatalf("err = %v", err)
	}
	var errs Errors
	if errors.As(err, &errs) {
		t.Error("a read failure is not a document error")
	}
}
