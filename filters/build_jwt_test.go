package filters

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/jwt"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
	"github.com/portcullis/portcullis/pkg/store"
)

// ecKey is a P-256 key with its private and public JWKs.
type ecKey struct {
	priv []byte // private JWK, for jwt.SignDevToken
	pub  string // public JWK
}

func newECKey(t *testing.T, kid string) ecKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := k.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	pt := ek.PublicKey().Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	pub := fmt.Sprintf(`{"kty":"EC","crv":"P-256","kid":%q,"x":%q,"y":%q}`, kid, b64(pt[1:33]), b64(pt[33:]))
	priv := strings.TrimSuffix(pub, "}") + fmt.Sprintf(`,"d":%q}`, b64(ek.Bytes()))
	return ecKey{priv: []byte(priv), pub: pub}
}

func jwks(keys ...ecKey) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.pub
	}
	return `{"keys":[` + strings.Join(parts, ",") + `]}`
}

func sign(t *testing.T, k ecKey, claims map[string]any) string {
	t.Helper()
	tok, err := jwt.SignDevToken(k.priv, claims, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func TestBuildJWTPolicies(t *testing.T) {
	corp, partner, other := newECKey(t, "c1"), newECKey(t, "p1"), newECKey(t, "o1")
	doc := fmt.Sprintf(`upstream: {url: http://127.0.0.1:8080}
providers:
  jwt:
    - name: corp
      issuer: https://corp.example/
      audiences: [api]
      keys: {jwks: '%s'}
      sources: [{bearer: true}, {query: access_token}]
      scope_claims: [scope, roles]
      claim_headers: {tenant.id: claim-tenant, email: /x-email}
      payload_header: jwt-payload
      deny_jtis: [burned]
    - name: partner
      issuer: https://partner.example/
      keys: {jwks: '%s'}
policies:
  api:
    authenticate: [{jwt: corp}, {jwt: partner}]
  open:
    anonymous: true
    authenticate: [{jwt: corp}]
routes:
  - {name: open, policy: open, match: {path: {prefix: /open}}}
  - {name: api, policy: api}
`, jwks(corp), jwks(partner))
	c := compile(t, doc)
	e := engine.New(c.Table)
	corpClaims := map[string]any{"iss": "https://corp.example/", "aud": "api", "sub": "alice",
		"scope": "read write", "roles": []any{"admin"}, "tenant": map[string]any{"id": "acme"}, "email": "a@corp.example"}
	corpTok := sign(t, corp, corpClaims)
	tests := []struct {
		name, target string
		hdr          http.Header
		status       int
		reason       string
	}{
		{"corp token", "/api", bearer(corpTok), 200, ""},
		{"corp token in the query", "/api?access_token=" + corpTok + "&x=1", nil, 200, ""},
		{"partner token passes corp", "/api", bearer(sign(t, partner, map[string]any{"iss": "https://partner.example/", "sub": "bob"})), 200, ""},
		{"unknown issuer: the last provider rejects", "/api", bearer(sign(t, partner, map[string]any{"iss": "https://evil.example/", "sub": "eve"})), 401, jwt.ReasonIssuer},
		{"unknown issuer and key", "/api", bearer(sign(t, other, map[string]any{"iss": "https://evil.example/", "sub": "eve"})), 401, jwt.ReasonUnknownKid},
		{"corp issuer, wrong key", "/api", bearer(sign(t, other, map[string]any{"iss": "https://corp.example/", "aud": "api", "sub": "eve"})), 401, jwt.ReasonUnknownKid},
		{"no token", "/api", nil, 401, "auth.missing"},
		{"anonymous route, no token", "/open", nil, 200, ""},
		{"anonymous route, invalid token", "/open", bearer(corpTok[:len(corpTok)-4] + "AAAA"), 401, jwt.ReasonSignature},
		{"revoked jti", "/api", bearer(sign(t, corp, map[string]any{"iss": "https://corp.example/", "aud": "api", "sub": "x", "jti": "burned"})), 401, jwt.ReasonRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := enginetest.NewRequest("GET", tc.target)
			for k, v := range tc.hdr {
				r.Header[k] = v
			}
			r.Header.Set("X-Email", "spoofed@evil.example")
			e.Prepare(r)
			d := e.Decide(context.Background(), r)
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("status %d reason %q; want %d %q", d.Status, d.Reason, tc.status, tc.reason)
			}
			if d.Status == 401 {
				if ch := d.Response.Get("Www-Authenticate"); !strings.HasPrefix(ch, "Bearer realm=") || strings.Contains(ch, corpTok) {
					t.Errorf("challenge %q", ch)
				}
			}
		})
	}
	// Identity and upstream headers of the corp token.
	r := enginetest.NewRequest("GET", "/api?access_token="+corpTok)
	r.Header.Set("X-Email", "spoofed@evil.example")
	e.Prepare(r)
	d := e.Decide(context.Background(), r)
	for name, want := range map[string]string{"x-portcullis-subject": "alice", "x-portcullis-scopes": "read write admin",
		"x-portcullis-claim-tenant": "acme", "x-email": "a@corp.example", "x-portcullis-jwt-payload": strings.Split(corpTok, ".")[1]} {
		if !hasSet(d, name, want) {
			t.Errorf("upstream %s: want %q in %v", name, want, d.Upstream.Set)
		}
	}
	if !strings.Contains(strings.Join(d.Upstream.RemoveQuery, ","), "access_token") {
		t.Errorf("access_token not stripped: %v", d.Upstream.RemoveQuery)
	}
	// One authenticator per provider and role: corp yields in api, rejects in open.
	byName := map[string]*engine.Pipeline{}
	for _, rt := range c.Table.Routes() {
		byName[rt.Name] = rt.Pipeline
	}
	api, open := byName["api"], byName["open"]
	if api.Authenticate[0].Auth == open.Authenticate[0].Auth {
		t.Error("a yielding and a rejecting use of corp share one authenticator")
	}
	if got := strings.Join(api.HideHeaders, ","); got != "authorization,x-email" {
		t.Errorf("hidden headers %q", got)
	}
	if got := strings.Join(api.Challenges, ","); got != `Bearer realm="corp",Bearer realm="partner"` {
		t.Errorf("challenges %q", got)
	}
}

func TestBuildJWTSharesProviders(t *testing.T) {
	k := newECKey(t, "k1")
	doc := `upstream: {url: http://127.0.0.1:8080}
providers:
  jwt: [{name: corp, forward: true, keys: {jwks: '` + jwks(k) + `'}}]
policies:
  a: {authenticate: [{jwt: corp}]}
  b: {authenticate: [{jwt: corp}]}
routes: [{name: a, policy: a, match: {path: {prefix: /a}}}, {name: b, policy: b}]
`
	c := compile(t, doc)
	rs := c.Table.Routes()
	if rs[0].Pipeline.Authenticate[0].Auth != rs[1].Pipeline.Authenticate[0].Auth {
		t.Error("two policies built two authenticators for one provider")
	}
	if len(rs[0].Pipeline.HideHeaders) != 0 {
		t.Errorf("forward: true still hides %v", rs[0].Pipeline.HideHeaders)
	}
	if len(c.Checks) != 0 {
		t.Errorf("static keys contribute readiness checks: %v", c.Checks)
	}
}

func TestBuildJWTErrors(t *testing.T) {
	k := newECKey(t, "k1")
	tests := []struct{ name, providers, want string }{
		{"yielding provider without issuer", `[{name: a, keys: {jwks: '` + jwks(k) + `'}}, {name: b, issuer: x, keys: {jwks: '` + jwks(k) + `'}}]`,
			`t.yaml:4:23: policies.p.authenticate[0].jwt: jwt provider "a" needs an issuer`},
		{"missing key file", `[{name: a, keys: {file: nope.json}}, {name: b, sources: [{cookie: c}], keys: {file: nope.json}}]`,
			`t.yaml:4:23: policies.p.authenticate[0].jwt: jwt provider "a": read jwks file: open nope.json`},
		{"missing ca file", `[{name: a, keys: {url: "https://127.0.0.1:1/k"}, remote: {ca_file: nope.pem}}, {name: b, sources: [{cookie: c}], keys: {file: x}}]`,
			`t.yaml:4:23: policies.p.authenticate[0].jwt: jwt provider "a": remote.ca_file: open nope.pem`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "upstream: {url: http://127.0.0.1:8080}\nproviders: {jwt: " + tc.providers + "}\npolicies:\n  p: {authenticate: [{jwt: a}, {jwt: b}]}\n"
			d, err := config.Parse("t.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(d, Deps{Offline: true})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant prefix %s", err, tc.want)
			}
		})
	}
}

func TestBuildJWTStoreRevocation(t *testing.T) {
	k := newECKey(t, "k1")
	doc := `upstream: {url: http://127.0.0.1:8080}
providers:
  jwt: [{name: corp, keys: {jwks: '` + jwks(k) + `'}}]
policies:
  a: {authenticate: [{jwt: corp}]}
routes: [{name: a, policy: a}]
`
	d, err := config.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory(store.MemoryOptions{})
	c, err := Build(d, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Table.Close()
	e := engine.New(c.Table)
	decide := func(tok string) engine.Decision {
		r := enginetest.NewRequest("GET", "/")
		r.Header.Set("Authorization", "Bearer "+tok)
		e.Prepare(r)
		return e.Decide(context.Background(), r)
	}
	withJTI, bob := sign(t, k, map[string]any{"sub": "alice", "jti": "j-1"}), sign(t, k, map[string]any{"sub": "bob"})
	if d := decide(withJTI); !d.Allow {
		t.Fatalf("before revocation: %d %s", d.Status, d.Reason)
	}
	ctx := context.Background()
	_ = st.Ban(ctx, RevokedJTIKey("corp", "j-1"), time.Hour)
	_ = st.Ban(ctx, RevokedSubjectKey("corp", "bob"), time.Hour)
	_ = st.Ban(ctx, RevokedSubjectKey("other", "alice"), time.Hour) // another provider's subject
	for _, tok := range []string{withJTI, bob} {
		if d := decide(tok); d.Status != 401 || d.Reason != jwt.ReasonRevoked {
			t.Errorf("after revocation (a cache hit): %d %s", d.Status, d.Reason)
		}
	}
	if d := decide(sign(t, k, map[string]any{"sub": "alice", "jti": "j-2"})); !d.Allow {
		t.Errorf("another provider's revocation applied: %d %s", d.Status, d.Reason)
	}
	rev := storeRevocation{bans: st, provider: "corp"}
	if n := testing.AllocsPerRun(100, func() { _, _ = rev.Revoked(ctx, "j-9", "carol") }); n > 0 {
		t.Errorf("revocation check allocates %.0f times", n)
	}
}

// A remote provider: fetched once at load over HTTPS with the configured CA, ready
// after the first fetch, stopped when the table closes; readiness names the failure.
func TestBuildJWTRemoteKeys(t *testing.T) {
	k := newECKey(t, "k1")
	var fetches atomic.Int32
	var down atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks(k)))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `upstream: {url: http://127.0.0.1:8080}
providers:
  jwt: [{name: corp, keys: {url: "` + srv.URL + `/jwks"}, remote: {ca_file: ca.pem, wait_first_fetch: true, first_fetch_timeout: 5s}}]
policies:
  a: {authenticate: [{jwt: corp}]}
  b: {authenticate: [{jwt: corp}]}
routes: [{name: a, policy: a}]
`
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Build(d, Deps{Offline: true}); err != nil || fetches.Load() != 0 {
		t.Fatalf("offline build: %v, %d fetches", err, fetches.Load())
	} else {
		_ = c.Table.Close()
	}
	c, err := Build(d, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Checks) != 1 || c.Checks[0].Name != "jwks corp" || c.Checks[0].Check() != nil || fetches.Load() != 1 {
		t.Fatalf("checks %v, %d fetches", c.Checks, fetches.Load())
	}
	e := engine.New(c.Table)
	r := enginetest.NewRequest("GET", "/")
	r.Header.Set("Authorization", "Bearer "+sign(t, k, map[string]any{"sub": "alice"}))
	e.Prepare(r)
	if dec := e.Decide(context.Background(), r); !dec.Allow {
		t.Fatalf("remote key: %d %s", dec.Status, dec.Reason)
	}
	if err := c.Table.Close(); err != nil {
		t.Fatal(err)
	}

	// The server is down: a new build is not ready and says why.
	down.Store(true)
	d2, _ := config.Load(path)
	c2, err := Build(d2, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Table.Close()
	if err := c2.Checks[0].Check(); err == nil || !strings.Contains(err.Error(), "no keys: last fetch failed") {
		t.Fatalf("check with the server down: %v", err)
	}
}

func TestKeyStatus(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		st   jwt.KeyStatus
		want string
	}{
		{jwt.KeyStatus{Keys: 2, LastError: fmt.Errorf("boom")}, ""},
		{jwt.KeyStatus{}, "no keys: first fetch pending"},
		{jwt.KeyStatus{LastAttempt: now, LastError: fmt.Errorf("boom")}, "no keys: last fetch failed: boom"},
		{jwt.KeyStatus{LastAttempt: now}, "no keys: the key set is empty"},
	} {
		got := ""
		if err := keyStatus(tc.st); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestBuildIntrospection(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, secret, _ := r.BasicAuth()
		if id != "portcullis" || secret != "s3cret" || r.ParseForm() != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		active := r.PostForm.Get("token") == "opaque-good"
		_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "sub": "svc", "scope": "read",
			"exp": time.Now().Add(time.Hour).Unix()})
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for name, data := range map[string][]byte{"ca.pem": ca, "secret": []byte("s3cret\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := `upstream: {url: http://127.0.0.1:8080}
providers:
  introspection: [{name: idp, endpoint: "` + srv.URL + `", client_id: portcullis, client_secret: "file:secret", ca_file: ca.pem}]
policies:
  a: {authenticate: [{introspection: idp}]}
  b: {authenticate: [{introspection: idp}]}
routes: [{name: a, policy: a}]
`
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Build(d, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Table.Close()
	e := engine.New(c.Table)
	for _, tc := range []struct {
		tok    string
		status int
	}{{"opaque-good", 200}, {"opaque-good", 200}, {"opaque-bad", 401}} {
		r := enginetest.NewRequest("GET", "/")
		r.Header.Set("Authorization", "Bearer "+tc.tok)
		e.Prepare(r)
		dec := e.Decide(context.Background(), r)
		if dec.Status != tc.status {
			t.Fatalf("%s: %d %s", tc.tok, dec.Status, dec.Reason)
		}
		if dec.Allow && (!hasSet(dec, "x-portcullis-subject", "svc") || !hasSet(dec, "x-portcullis-auth", engine.AuthIntrospection)) {
			t.Errorf("identity headers %v", dec.Upstream.Set)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("endpoint calls %d, want 2 (the active result is cached)", n)
	}
}
