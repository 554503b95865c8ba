package filters

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/hmac"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
	"github.com/portcullis/portcullis/pkg/httpsig"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/valkeystore"
	"github.com/portcullis/portcullis/test/redisharness"
)

const (
	hmacSecret   = "registry-test-secret-0123456789" // via env:PORTCULLIS_TEST_HMAC
	githubSecret = "It's a Secret to Everybody"      // the published GitHub vector's
)

var hmacNow = time.Unix(1_760_000_000, 0)

// hmacDoc configures an RFC 9421 provider (hmac-sha256 and an ed25519 key whose PEM is
// pubPath), a GitHub provider and a route for each.
func hmacDoc(pubPath string) string {
	return `upstream: {url: http://127.0.0.1:8080}
providers:
  hmac:
    - name: partners
      clients:
        - subject: billing
          scopes: [orders:write]
          keys:
            - {id: billing-1, secret: env:PORTCULLIS_TEST_HMAC}
            - {id: billing-ed, algorithm: ed25519, public_key: "file:` + pubPath + `"}
      policy: {required_components: ["@method", "@target-uri", "@authority"]}
      body_limit: 64
    - name: github
      scheme: github
      clients: [{subject: github, keys: [{id: gh-hook, secret: env:PORTCULLIS_TEST_GITHUB}]}]
policies:
  signed: {authenticate: [{hmac: {provider: partners}}]}
  hooks: {authenticate: [{hmac: {provider: github}}]}
routes:
  - {name: api, policy: signed, match: {path: {prefix: /api/}}}
  - {name: hooks, policy: hooks, match: {path: {prefix: /hooks/}}}
`
}

// hmacEnv sets the secrets and writes an ed25519 public key; it returns the document
// and the matching private key.
func hmacEnv(t *testing.T) (string, ed25519.PrivateKey) {
	t.Setenv("PORTCULLIS_TEST_HMAC", hmacSecret)
	t.Setenv("PORTCULLIS_TEST_GITHUB", githubSecret)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := writePEM(t, "PUBLIC KEY", mustPKIX(t, pub))
	return hmacDoc(path), priv
}

func mustPKIX(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, typ string, der []byte) string {
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func compileWith(t *testing.T, doc string, deps Deps) *engine.Engine {
	t.Helper()
	d, err := config.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	c, err := Build(d, deps)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() { _ = c.Table.Close() })
	return engine.New(c.Table)
}

// signed returns an engine request for method target with body, signed by key as a
// client would send it; the front-end read the whole body.
func signed(t *testing.T, key *httpsig.Key, method, target, body string) *engine.Request {
	t.Helper()
	s, err := httpsig.NewSigner(key, httpsig.SignerOptions{Now: func() time.Time { return hmacNow },
		Components: []string{"@method", "@target-uri", "@authority"}})
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(method, "http://example.test"+target, strings.NewReader(body))
	if err := s.SignRequest(hr); err != nil {
		t.Fatal(err)
	}
	r := enginetest.NewRequest(method, target)
	for k, v := range hr.Header {
		r.Header[k] = v
	}
	r.Body, r.HasBody = []byte(body), true
	return r
}

func TestBuildHMAC(t *testing.T) {
	doc, edPriv := hmacEnv(t)
	e := compileWith(t, doc, Deps{Now: func() time.Time { return hmacNow }})
	hk, _ := httpsig.NewHMACKey("billing-1", []byte(hmacSecret))
	ek, _ := httpsig.NewPrivateKey("billing-ed", httpsig.Ed25519, edPriv)
	other, _ := httpsig.NewHMACKey("billing-1", []byte("another-secret-0123456789"))

	replayed := signed(t, hk, "POST", "/api/orders", `{"n":1}`)
	tampered := signed(t, hk, "POST", "/api/orders", `{"n":1}`)
	tampered.Body = []byte(`{"n":2}`)
	truncated := signed(t, hk, "POST", "/api/orders", strings.Repeat("x", 100))
	truncated.Body, truncated.BodyTruncated = truncated.Body[:64], true
	hook := enginetest.NewRequest("POST", "/hooks/github")
	hook.Header.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	hook.Body, hook.HasBody = []byte("Hello, World!"), true
	badHook := enginetest.NewRequest("POST", "/hooks/github")
	badHook.Header = hook.Header.Clone()
	badHook.Body, badHook.HasBody = []byte("Hello, World?"), true

	tests := []struct {
		name    string
		r       *engine.Request
		status  int
		reason  string
		subject string
	}{
		{"hmac-sha256", replayed, 200, "", "billing"},
		{"replay", replayed, 401, hmac.ReasonReplay, ""},
		{"ed25519", signed(t, ek, "GET", "/api/orders?page=2", ""), 200, "", "billing"},
		{"wrong secret", signed(t, other, "GET", "/api/orders", ""), 401, hmac.ReasonBadSignature, ""},
		{"tampered body", tampered, 401, hmac.ReasonDigestMismatch, ""},
		{"truncated body", truncated, 401, hmac.ReasonBodyTruncated, ""},
		{"no signature", enginetest.NewRequest("GET", "/api/orders"), 401, "auth.missing", ""},
		{"github vector", hook, 200, "", "github"},
		{"github tampered", badHook, 401, hmac.ReasonBadSignature, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(context.Background(), tc.r)
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("status %d reason %q; want %d %q", d.Status, d.Reason, tc.status, tc.reason)
			}
			if tc.subject != "" && (d.Identity.Subject != tc.subject || d.Identity.Method != engine.AuthHMAC) {
				t.Errorf("identity %+v", d.Identity)
			}
			if d.Route == "api" && d.Status == 401 && d.Response.Get("Www-Authenticate") != "Signature" {
				t.Errorf("WWW-Authenticate = %q", d.Response.Values("Www-Authenticate"))
			}
		})
	}
	// The front-ends read as many body bytes as the route's provider needs.
	if got := e.Prepare(enginetest.NewRequest("POST", "/api/x")); got != 64 {
		t.Errorf("api body limit %d, want 64", got)
	}
	if got := e.Prepare(enginetest.NewRequest("POST", "/hooks/x")); got != hmac.DefaultBodyLimit {
		t.Errorf("hooks body limit %d, want %d", got, hmac.DefaultBodyLimit)
	}
}

// Two replicas compiled from the same document and sharing a store: a signature
// accepted by one is a replay at the other. With the real Valkey store too.
func TestBuildHMACReplayAcrossReplicas(t *testing.T) {
	doc, _ := hmacEnv(t)
	stores := map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return store.NewMemory(store.MemoryOptions{}) },
		"valkey": func(t *testing.T) store.Store {
			srv := redisharness.Start(t)
			s, err := valkeystore.New(valkeystore.Options{Addrs: []string{srv.Addr()}, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			return s
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			shared := newStore(t)
			deps := Deps{Now: func() time.Time { return hmacNow }, Store: shared}
			a, b := compileWith(t, doc, deps), compileWith(t, doc, deps)
			hk, _ := httpsig.NewHMACKey("billing-1", []byte(hmacSecret))
			r := signed(t, hk, "POST", "/api/orders", "{}")
			again := *r
			again.Header = r.Header.Clone()
			if d := a.Decide(context.Background(), r); !d.Allow {
				t.Fatalf("replica a: %d %s", d.Status, d.Reason)
			}
			if d := b.Decide(context.Background(), &again); d.Status != 401 || d.Reason != hmac.ReasonReplay {
				t.Fatalf("replica b: %d %s; want the replay denied", d.Status, d.Reason)
			}
		})
	}
}

// Compile problems are placed at the key's line and never show a secret's value.
func TestBuildHMACErrorsArePlaced(t *testing.T) {
	t.Setenv("PORTCULLIS_TEST_SHORT", "short-secret")
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecPriv)
	tests := []struct {
		name, key, want string
	}{
		{"unset variable", "{id: k, secret: env:PORTCULLIS_TEST_UNSET}",
			"t.yaml:6:47: providers.hmac[0].clients[0].keys[0].secret: secret env:PORTCULLIS_TEST_UNSET: environment variable is not set"},
		{"short secret", "{id: k, secret: env:PORTCULLIS_TEST_SHORT}",
			"t.yaml:6:47: providers.hmac[0].clients[0].keys[0].secret: secret env:PORTCULLIS_TEST_SHORT is shorter than 16 bytes"},
		{"missing file", "{id: k, algorithm: ed25519, public_key: file:/nonexistent/k.pem}",
			"t.yaml:6:71: providers.hmac[0].clients[0].keys[0].public_key: secret file:/nonexistent/k.pem: open /nonexistent/k.pem: no such file or directory"},
		{"private key", "{id: k, algorithm: ecdsa-p256-sha256, public_key: 'file:" + writePEM(t, "EC PRIVATE KEY", ecDER) + "'}",
			"holds a private key; configure the public key only"},
		{"wrong key type", "{id: k, algorithm: ecdsa-p256-sha256, public_key: 'file:" + writePEM(t, "PUBLIC KEY", mustPKIX(t, edPub)) + "'}",
			`key "k": a ed25519.PublicKey does not suit algorithm "ecdsa-p256-sha256"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "upstream: {url: http://127.0.0.1:8080}\nproviders:\n  hmac:\n    - name: p\n      clients:\n        - {subject: s, keys: [" + tc.key + "]}\n" +
				"policies:\n  a: {authenticate: [{hmac: {provider: p}}]}\n  b: {authenticate: [{hmac: {provider: p}}]}\n"
			d, err := config.Parse("t.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(d, Deps{})
			if err == nil {
				t.Fatal("built")
			}
			lines := strings.Split(err.Error(), "\n")
			// once for the key, however many stages use the provider, plus one per stage
			if len(lines) != 3 || !strings.Contains(lines[0], tc.want) ||
				!strings.HasPrefix(lines[1], "t.yaml:8:23: policies.a.authenticate[0].hmac: hmac provider \"p\" cannot be used (see providers.hmac[0])") {
				t.Fatalf("errors:\n%s\nwant first %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "short-secret") {
				t.Fatal("the secret value is in the error")
			}
		})
	}
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("not pem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := parsePublicKeyPEM(data)
		if (pub == nil) == (err == nil) {
			t.Fatalf("pub %v err %v", pub, err)
		}
		if err == nil && bytes.Contains(data, []byte("PRIVATE KEY-----")) && !bytes.Contains(data, []byte("BEGIN PUBLIC KEY")) && !bytes.Contains(data, []byte("BEGIN RSA PUBLIC KEY")) {
			t.Fatal("accepted a private key block")
		}
	})
}
