package jwt

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
)

func TestKeySetPolicy(t *testing.T) {
	es, es2, hs := newKey(t, ES256, "es"), newKey(t, ES256, "es"), newKey(t, HS256, "hs")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallJWKS := []byte(`{"keys":[{"kty":"RSA","kid":"small","n":"` + b64.EncodeToString(small.N.Bytes()) + `","e":"AQAB"}]}`)
	rs := newKey(t, RS256, "rs")
	withField := func(k *testKey, field string, v any) []byte {
		m := k.public(t)
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		b, _ := json.Marshal(map[string]any{"keys": []any{m}})
		return b
	}
	encKey := withField(newKey(t, ES256, "enc"), "use", "enc")
	mixedUse, _ := json.Marshal(map[string]any{"keys": []any{es.public(t), func() map[string]any {
		m := newKey(t, ES256, "e2").public(t)
		m["use"] = "enc"
		return m
	}()}})

	reject := map[string][]byte{
		"mixed symmetric and asymmetric": jwks(t, es, hs),
		"duplicate kid":                  jwks(t, es, es2),
		"RSA 1024":                       smallJWKS,
		"RSA exponent 1":                 withField(rs, "e", "AQ"),
		"RSA even exponent":              withField(rs, "e", "Ag"),
		"alg does not fit the curve":     withField(es, "alg", "ES384"),
		"alg of another type":            withField(es, "alg", "RS256"),
		"unknown alg":                    withField(es, "alg", "ES224"),
		"alg none":                       withField(es, "alg", "none"),
		"point off the curve":            withField(es, "y", "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgnw"),
		"short HMAC secret":              []byte(`{"keys":[{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg"}]}`),
		"HS512 secret too short":         []byte(`{"keys":[{"kty":"oct","alg":"HS512","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}`),
		"only encryption keys":           encKey,
		"empty":                          []byte(`{"keys":[]}`),
		"not JSON":                       []byte(`<html>`),
		"duplicate member":               []byte(`{"keys":[],"keys":[]}`),
		"keys not an array":              []byte(`{"keys":{}}`),
		"kid not a string":               withField(es, "kid", 5),
		"unknown kty":                    []byte(`{"keys":[{"kty":"XYZ","kid":"x"}]}`),
		"too many keys":                  []byte(`{"keys":[` + strings.Repeat(`{"kty":"oct","use":"enc","k":"AA"},`, MaxKeys) + `{}]}`),
	}
	for name, data := range reject {
		if _, err := ParseKeySet(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	set, err := ParseKeySet(mixedUse)
	if err != nil || set.Len() != 1 {
		t.Fatalf("an encryption key beside a signing key is skipped: %v", err)
	}
	single, err := ParseKeySet([]byte(mustJSON(t, es.public(t))))
	if err != nil || single.Len() != 1 || single.Keys()[0].ID != "es" {
		t.Fatalf("a single JWK is a set of one: %v", err)
	}
	if s := must(ParseKeySet(jwks(t, es, rs))).Supported(); !s.Has(ES256) || !s.Has(RS512) || s.Has(PS256) || s.Has(ES384) || s.Has(HS256) {
		t.Fatalf("supported %s", s)
	}
}
