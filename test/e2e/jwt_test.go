package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis/portcullis/filters/jwt"
)

var b64 = base64.RawURLEncoding.EncodeToString

// ecJWK returns a fresh P-256 key as a public and a private JWK.
func ecJWK(t *testing.T, kid string) (pub, priv string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := k.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	pt := ek.PublicKey().Bytes()
	pub = fmt.Sprintf(`{"kty":"EC","crv":"P-256","kid":%q,"x":%q,"y":%q}`, kid, b64(pt[1:33]), b64(pt[33:]))
	return pub, pub[:len(pub)-1] + fmt.Sprintf(`,"d":%q}`, b64(ek.Bytes()))
}

// jwksServer is a real HTTPS JWKS endpoint whose key set can change.
type jwksServer struct {
	mu      sync.Mutex
	keys    []string
	fetches atomic.Int32
}

func (j *jwksServer) set(keys ...string) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	body := `{"keys":[` + strings.Join(j.keys, ",") + `]}`
	j.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write([]byte(body))
}

// startTLS serves h with TLS on addr ("" for any port) and writes the test CA to dir.
func startTLS(t *testing.T, h http.Handler, addr, dir string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	writeFile(t, dir, "ca.pem", string(ca))
	return srv
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const jwtPolicy = `
upstream: {url: http://127.0.0.1:1}
providers:
  jwt:
    - name: corp
      issuer: https://id.corp.example/
      audiences: [api]
      keys: {url: "%s/jwks"}
      remote: {ca_file: ca.pem, unknown_kid_interval: 100ms, timeout: 2s%s}
      sources: [{bearer: true}, {query: access_token}]
      scope_claims: [scope, roles]
      claim_headers: {tenant.id: claim-tenant}
policies:
  api: {authenticate: [{jwt: corp}]}
routes: [{name: api, policy: api}]
`

func TestJWTEndToEnd(t *testing.T) {
	dir := t.TempDir()
	pub1, priv1 := ecJWK(t, "k1")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := fmt.Sprintf(`{"kty":"RSA","kid":"r1","n":%q,"e":"AQAB"}`, b64(rsaKey.N.Bytes()))
	keys := &jwksServer{}
	keys.set(pub1, rsaPub)
	srv := startTLS(t, keys, "", dir)
	cfg := writeFile(t, dir, "p.yaml", fmt.Sprintf(jwtPolicy, srv.URL, ", wait_first_fetch: true"))
	keyFile := writeFile(t, dir, "k1.jwk", priv1)
	up := newRecorder(t)
	s := startSidecar(t, cfg, up.srv.URL)
	base := "http://" + s.proxy

	claims := `{"iss":"https://id.corp.example/","aud":"api","sub":"alice","scope":"read","roles":["admin"],"tenant":{"id":"acme"}}`
	code, out, errs := runCLI(t, "token", "new", "--key", keyFile, "--claims", claims, "--ttl", "10m")
	if code != 0 {
		t.Fatalf("token new: %d %s", code, errs)
	}
	valid := strings.TrimSpace(out)

	t.Run("valid token through the proxy", func(t *testing.T) {
		resp, body := get(t, base+"/orders", map[string]string{"Authorization": "Bearer " + valid,
			"X-Portcullis-Subject": "mallory"})
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		h := up.next(t)
		for k, v := range map[string]string{"X-Portcullis-Subject": "alice", "X-Portcullis-Auth": "jwt",
			"X-Portcullis-Scopes": "read admin", "X-Portcullis-Claim-Tenant": "acme",
			"X-Portcullis-Issuer": "https://id.corp.example/", "X-Portcullis-Key-Id": "k1"} {
			if got := h.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want %q", k, got, v)
			}
		}
		if h.Get("Authorization") != "" {
			t.Error("the token reached the upstream")
		}
	})

	t.Run("access_token query parameter is stripped", func(t *testing.T) {
		resp, _ := get(t, base+"/ws?keep=1&access_token="+valid, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		if p := up.next(t).Get(":path"); p != "/ws?keep=1" {
			t.Errorf("upstream path %q", p)
		}
	})

	t.Run("key rotation: a new kid is accepted after the early refresh", func(t *testing.T) {
		pub2, priv2 := ecJWK(t, "k2")
		tok := devToken(t, []byte(priv2), map[string]any{"iss": "https://id.corp.example/", "aud": "api", "sub": "bob"})
		before := keys.fetches.Load()
		keys.set(pub1, rsaPub, pub2)
		resp, body := get(t, base+"/orders", map[string]string{"Authorization": "Bearer " + tok})
		if resp.StatusCode != 200 || keys.fetches.Load() <= before {
			t.Fatalf("rotated key: %d %s (fetches %d -> %d)", resp.StatusCode, body, before, keys.fetches.Load())
		}
		if up.next(t).Get("X-Portcullis-Key-Id") != "k2" {
			t.Error("key id")
		}
	})

	_, privOther := ecJWK(t, "nope")
	hsKey := fmt.Sprintf(`{"kty":"oct","kid":"r1","alg":"HS256","k":%q}`, b64(pemPublic(t, &rsaKey.PublicKey)))
	attacks := []struct{ name, token, reason string }{
		{"expired", devToken(t, []byte(priv1), map[string]any{"iss": "https://id.corp.example/", "aud": "api", "sub": "alice",
			"exp": time.Now().Add(-2 * time.Hour).Unix()}), jwt.ReasonExpired},
		{"alg none", b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice","iss":"https://id.corp.example/","aud":"api"}`)) + ".",
			jwt.ReasonAlgNotAllowed},
		{"HS256 signed with the RSA public key", devToken(t, []byte(hsKey), map[string]any{"iss": "https://id.corp.example/",
			"aud": "api", "sub": "admin"}), jwt.ReasonAlgNotAllowed},
		{"unknown kid", devToken(t, []byte(privOther), map[string]any{"iss": "https://id.corp.example/", "aud": "api", "sub": "eve"}),
			jwt.ReasonUnknownKid},
		{"wrong audience", devToken(t, []byte(priv1), map[string]any{"iss": "https://id.corp.example/", "aud": "other", "sub": "alice"}),
			jwt.ReasonAudience},
	}
	for _, a := range attacks {
		t.Run("rejects "+a.name, func(t *testing.T) {
			resp, body := get(t, base+"/orders", map[string]string{"Authorization": "Bearer " + a.token})
			ch := resp.Header.Get("Www-Authenticate")
			if resp.StatusCode != 401 || !strings.Contains(body, `"reason":"`+a.reason+`"`) ||
				!strings.HasPrefix(ch, `Bearer realm="corp", error="invalid_token", error_description="`) {
				t.Fatalf("%d %s %q", resp.StatusCode, body, ch)
			}
			if secret := a.token[strings.LastIndexByte(a.token, '.')-10:]; strings.Contains(body+ch, secret) {
				t.Error("the token is echoed in the response")
			}
			up.none(t)
		})
	}

	t.Run("ext_authz with a real gRPC client", func(t *testing.T) {
		cc, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		client := authv3.NewAuthorizationClient(cc)
		resp, err := client.Check(ctx, checkRequest("/orders?access_token=x", map[string]string{"authorization": "Bearer " + valid}))
		if err != nil || codes.Code(resp.Status.Code) != codes.OK {
			t.Fatalf("check: %v %v", resp, err)
		}
		set := map[string]string{}
		for _, h := range resp.GetOkResponse().Headers {
			set[h.Header.Key] = h.Header.Value
		}
		if set["x-portcullis-subject"] != "alice" || set["x-portcullis-claim-tenant"] != "acme" || set["x-portcullis-auth"] != "jwt" {
			t.Errorf("identity headers %v", set)
		}
		ok := resp.GetOkResponse()
		if !strings.Contains(strings.Join(ok.HeadersToRemove, ","), "authorization") ||
			strings.Join(ok.QueryParametersToRemove, ",") != "access_token" {
			t.Errorf("removed %v, query %v", ok.HeadersToRemove, ok.QueryParametersToRemove)
		}
		resp, err = client.Check(ctx, checkRequest("/orders", map[string]string{"authorization": "Bearer " + attacks[0].token}))
		if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
			t.Fatalf("expired over ext_authz: %v %v", resp, err)
		}
	})

	t.Run("token inspect explains the failure", func(t *testing.T) {
		code, out, _ := runCLI(t, "token", "inspect", attacks[0].token, "--config", cfg)
		if code != 1 || !strings.Contains(out, "verdict: REJECTED by provider corp: jwt.expired") {
			t.Fatalf("inspect expired: %d\n%s", code, out)
		}
		code, out, _ = runCLI(t, "token", "inspect", valid, "--config", cfg)
		if code != 0 || !strings.Contains(out, `verdict: VALID for provider corp: subject "alice"`) {
			t.Fatalf("inspect valid: %d\n%s", code, out)
		}
	})

	logs := s.logs.String()
	for _, tok := range append([]string{valid}, attacks[0].token, attacks[2].token) {
		if sig := tok[strings.LastIndexByte(tok, '.')+1:]; sig != "" && strings.Contains(logs, sig) {
			t.Fatal("a token appears in the logs")
		}
	}
}

func devToken(t *testing.T, key []byte, claims map[string]any) string {
	t.Helper()
	tok, err := jwt.SignDevToken(key, claims, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pemPublic(t *testing.T, k *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// readyz polls /readyz until match accepts its answer or the deadline passes.
func readyz(t *testing.T, s *sidecar, within time.Duration, match func(int, map[string]string) bool) (int, map[string]string) {
	t.Helper()
	var status int
	var checks map[string]string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + s.admin + "/readyz")
		if err != nil {
			continue
		}
		var rep struct {
			Checks map[string]string `json:"checks"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if status, checks = resp.StatusCode, rep.Checks; match(status, checks) {
			return status, checks
		}
	}
	t.Fatalf("readyz: last %d %v\n%s", status, checks, s.logs)
	return 0, nil
}

// The JWKS server is down at startup: the sidecar waits first_fetch_timeout, serves,
// reports not ready with the reason, and becomes ready once the server is up.
func TestJWTReadinessFollowsKeys(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	// The test CA is the same for every httptest TLS server: write it now.
	startTLS(t, http.NotFoundHandler(), "", dir).Close()
	cfg := writeFile(t, dir, "p.yaml", fmt.Sprintf(jwtPolicy, "https://"+addr, ", wait_first_fetch: true, first_fetch_timeout: 1s"))
	s := launch(t, cfg, "http://127.0.0.1:1")
	status, checks := readyz(t, s, 10*time.Second, func(code int, c map[string]string) bool { return code != 0 })
	if status != 503 || !strings.HasPrefix(checks["jwks corp"], "no keys: last fetch failed") {
		t.Fatalf("server down: %d %v", status, checks)
	}
	pub, _ := ecJWK(t, "k1")
	keys := &jwksServer{}
	keys.set(pub)
	startTLS(t, keys, addr, dir)
	readyz(t, s, 15*time.Second, func(code int, c map[string]string) bool { return code == 200 && c["jwks corp"] == "ok" })
	// Both fetch outcomes are counted and the key set size is published.
	if f := metric(t, s.admin, `portcullis_jwks_fetches_total{outcome="failure",provider="corp"}`); f < 1 {
		t.Errorf("failed JWKS fetches not counted: %v", f)
	}
	if ok := metric(t, s.admin, `portcullis_jwks_fetches_total{outcome="success",provider="corp"}`); ok < 1 {
		t.Errorf("successful JWKS fetch not counted: %v", ok)
	}
	if n := metric(t, s.admin, `portcullis_jwks_keys{provider="corp"}`); n != 1 {
		t.Errorf("portcullis_jwks_keys = %v, want 1", n)
	}
	waitLog(t, s, "jwks fetch failed; keeping the last good key set")
}

// Opaque tokens through a local RFC 7662 endpoint over HTTPS with client credentials.
func TestIntrospectionEndToEnd(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	idp := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "portcullis" || secret != "s3cret" || r.ParseForm() != nil {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		resp := map[string]any{"active": false}
		if r.PostForm.Get("token") == "opaque-good-token" {
			resp = map[string]any{"active": true, "sub": "svc-billing", "scope": "read write", "iss": "https://idp.example/",
				"exp": time.Now().Add(time.Hour).Unix()}
		}
		_ = json.NewEncoder(w).Encode(resp)
	}), "", dir)
	writeFile(t, dir, "secret", "s3cret\n")
	cfg := writeFile(t, dir, "p.yaml", `
upstream: {url: http://127.0.0.1:1}
providers:
  introspection:
    - {name: idp, endpoint: "`+idp.URL+`/introspect", client_id: portcullis, client_secret: "file:secret",
       issuer: "https://idp.example/", ca_file: ca.pem, required_scopes: [read]}
policies:
  api: {authenticate: [{introspection: idp}]}
routes: [{name: api, policy: api}]
`)
	up := newRecorder(t)
	s := startSidecar(t, cfg, up.srv.URL)
	base := "http://" + s.proxy
	for i := 0; i < 2; i++ {
		resp, body := get(t, base+"/x", map[string]string{"Authorization": "Bearer opaque-good-token"})
		if resp.StatusCode != 200 {
			t.Fatalf("active token: %d %s", resp.StatusCode, body)
		}
		h := up.next(t)
		if h.Get("X-Portcullis-Subject") != "svc-billing" || h.Get("X-Portcullis-Auth") != "introspection" || h.Get("Authorization") != "" {
			t.Errorf("upstream headers %v", h)
		}
	}
	resp, body := get(t, base+"/x", map[string]string{"Authorization": "Bearer opaque-revoked"})
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("Www-Authenticate"), `error="invalid_token"`) ||
		strings.Contains(body, "opaque-revoked") {
		t.Fatalf("inactive token: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	up.none(t)
	if n := calls.Load(); n != 2 {
		t.Errorf("introspection calls %d, want 2 (the active result is cached)", n)
	}
	if strings.Contains(s.logs.String(), "s3cret") || strings.Contains(s.logs.String(), "opaque-good-token") {
		t.Error("a secret or token appears in the logs")
	}
}

func TestTokenCLI(t *testing.T) {
	code, out, errs := runCLI(t, "token", "new", "--help")
	if code != 0 || !strings.Contains(out+errs, "DEVELOPMENT TOOL") {
		t.Fatalf("help: %d %s%s", code, out, errs)
	}
	keyFile := writeFile(t, t.TempDir(), "k.jwk", func() string { _, p := ecJWK(t, "k"); return p }())
	if code, _, errs := runCLI(t, "token", "new", "--key", keyFile, "--claims", `["not an object"]`); code != 2 || errs == "" {
		t.Fatalf("bad claims: %d %s", code, errs)
	}
	none := b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"sub":"x","sub":"y"}`)) + "."
	code, out, _ = runCLI(t, "token", "inspect", none)
	if code != 1 || !strings.Contains(out, "problem: jwt.alg_not_allowed") || !strings.Contains(out, "WITHOUT verification") {
		t.Fatalf("inspect alg none: %d\n%s", code, out)
	}
	if code, _, errs := runCLI(t, "token", "inspect"); code != 2 || !strings.Contains(errs, "usage") {
		t.Fatalf("no token: %d %s", code, errs)
	}
}
