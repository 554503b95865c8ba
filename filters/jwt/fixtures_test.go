package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

// testNow is the frozen clock of the tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// testKey is a signing key with its public JWK.
type testKey struct {
	priv any
	alg  Alg
	kid  string
}

var (
	rsaOnce sync.Once
	rsaPriv *rsa.PrivateKey
)

// sharedRSA returns one 2048-bit key for the whole test binary (generation is slow).
func sharedRSA(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaPriv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaPriv
}

// newKey returns a fresh key for alg (RSA keys are shared).
func newKey(t testing.TB, alg Alg, kid string) *testKey {
	t.Helper()
	k := &testKey{alg: alg, kid: kid}
	var err error
	switch alg.kind() {
	case kindRSA:
		k.priv = sharedRSA(t)
	case kindP256:
		k.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case kindP384:
		k.priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case kindP521:
		k.priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case kindEd25519:
		_, k.priv, err = ed25519.GenerateKey(rand.Reader)
	case kindOct:
		s := make([]byte, 64)
		_, err = rand.Read(s)
		k.priv = s
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// public returns the key's public JWK as a map (kid and alg set when present).
func (k *testKey) public(t testing.TB) map[string]any {
	t.Helper()
	var pub any = k.priv
	switch p := k.priv.(type) {
	case *rsa.PrivateKey:
		pub = &p.PublicKey
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
	case ed25519.PrivateKey:
		pub = p.Public()
	}
	jk, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jk)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if k.kid != "" {
		m["kid"] = k.kid
	}
	m["alg"] = k.alg.String()
	return m
}

// jwks returns a JWK Set of the keys' public halves.
func jwks(t testing.TB, keys ...*testKey) []byte {
	t.Helper()
	list := make([]any, len(keys))
	for i, k := range keys {
		list[i] = k.public(t)
	}
	b, err := json.Marshal(map[string]any{"keys": list})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token signs claims with k under a standard header.
func (k *testKey) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": k.alg.String(), "typ": "JWT"}
	if k.kid != "" {
		h["kid"] = k.kid
	}
	hb, _ := json.Marshal(h)
	pb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return k.raw(t, string(hb), string(pb))
}

// raw signs arbitrary header and payload text with k's key and alg.
func (k *testKey) raw(t testing.TB, header, payload string) string {
	t.Helper()
	tok, err := signCompact(k.priv, k.alg, []byte(header), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims returns valid claims for the test issuer and audience.
func claims(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": "https://issuer.test/", "aud": "api", "sub": "alice",
		"iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// newAuth returns an authenticator over static keys with test defaults; mod may
// change the options.
func newAuth(t testing.TB, keys []byte, mod func(*Options)) *Authenticator {
	t.Helper()
	o := Options{
		Name: "corp", Issuer: "https://issuer.test/", Audiences: []string{"api"},
		Keys: KeysOptions{JWKS: keys}, Now: fixedClock,
	}
	if mod != nil {
		mod(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// bearerRequest returns a request carrying tok as a Bearer token.
func bearerRequest(tok string) *engine.Request {
	r := enginetest.NewRequest("GET", "/api/x")
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}
