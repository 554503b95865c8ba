package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestSignDevTokenVerifies(t *testing.T) {
	es := newKey(t, ES256, "")
	der, err := x509.MarshalPKCS8PrivateKey(es.priv.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	ed := newKey(t, EdDSA, "ed-1")
	jk, err := jwk.Import(ed.priv)
	if err != nil {
		t.Fatal(err)
	}
	jk.Set(jwk.KeyIDKey, "ed-1")
	jwkKey, _ := json.Marshal(jk)

	a := newAuth(t, jwks(t, es, ed), nil)
	for name, key := range map[string][]byte{"pem": pemKey, "jwk": jwkKey} {
		tok, err := SignDevToken(key, map[string]any{"iss": "https://issuer.test/", "aud": "api", "sub": "dev"}, 10*time.Minute, testNow)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		id, err := a.Authenticate(context.Background(), bearerRequest(tok))
		if err != nil || id.Subject != "dev" || !id.Expires.Equal(testNow.Add(10*time.Minute)) {
			t.Fatalf("%s: %v %+v", name, err, id)
		}
		rep, err := Inspect(tok)
		if err != nil || len(rep.Problems) != 0 || rep.Claims["sub"] != "dev" || !rep.IssuedAt.Equal(testNow) {
			t.Fatalf("%s: inspect %+v %v", name, rep, err)
		}
	}
	if _, err := SignDevToken([]byte("not a key"), nil, 0, testNow); err == nil {
		t.Fatal("garbage key accepted")
	}
	pub, _ := json.Marshal(es.public(t))
	if _, err := SignDevToken(pub, nil, 0, testNow); err == nil {
		t.Fatal("a public key cannot sign")
	}
}

func TestInspectReportsProblems(t *testing.T) {
	es := newKey(t, ES256, "k")
	cases := map[string]string{
		es.raw(t, `{"alg":"none"}`, `{"sub":"x"}`):               "alg none",
		es.raw(t, `{"alg":"ES256","alg":"ES256"}`, `{"exp":1}`):  "duplicate JSON key",
		es.raw(t, `{"alg":"ES256"}`, `{"sub":"x"}`):              "no exp",
		es.raw(t, `{"alg":"ES256","crit":["b64"]}`, `{"exp":1}`): "critical extension",
		es.raw(t, `{"alg":"ES256"}`, `{"exp":"soon"}`):           "wrong type",
	}
	for tok, want := range cases {
		rep, err := Inspect(tok)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(rep.Problems, "; "), want) {
			t.Errorf("%s: problems %q", want, rep.Problems)
		}
	}
	if _, err := Inspect("pk_live_123"); err == nil {
		t.Fatal("not a JWS")
	}
}
