package jwt

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseCompact: no input panics; an accepted token re-encodes to itself (the
// decoding is canonical) and its header agrees with encoding/json.
func FuzzParseCompact(f *testing.F) {
	es := newKey(f, ES256, "k")
	for _, s := range []string{
		es.token(f, claims(nil)),
		es.raw(f, `{"alg":"ES256","kid":"k","crit":["x"]}`, `{}`),
		es.raw(f, `{"alg":"ES256","alg":"none"}`, `{}`),
		es.raw(f, `{"alg":"ES256","cty":"JWT"}`, `{}`),
		"eyJhbGciOiJub25lIn0.e30.", "a.b.c.d.e", "..", "e30.e30.e30", "eyJhbGciOiJFUzI1NiJ9.e30.AA==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ParseCompact(tok)
		if err != nil {
			if _, ok := err.(*VerifyError); !ok {
				t.Fatalf("error %v is not a *VerifyError", err)
			}
			return
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || b64.EncodeToString(c.Payload) != parts[1] || b64.EncodeToString(c.Signature) != parts[2] {
			t.Fatalf("accepted a non-canonical token %q", tok)
		}
		if _, ok := ParseAlg(c.Header.AlgName); !ok {
			t.Fatalf("accepted alg %q", c.Header.AlgName)
		}
		var std map[string]any
		hdr, _ := b64.DecodeString(parts[0])
		if err := json.Unmarshal(hdr, &std); err != nil || !reflect.DeepEqual(std, c.Header.Fields) {
			t.Fatalf("header disagrees with encoding/json: %v", err)
		}
	})
}

// FuzzParseJSONObject: our parser accepts a subset of what encoding/json accepts and
// decodes it to the same value.
func FuzzParseJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":"\u00e9"}],"c":null}`, `{"a":1,"a":2}`, `{"a":"\ud83d\ude00"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseJSONObject(b)
		if err != nil {
			return
		}
		var want map[string]any
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("accepted what encoding/json rejects: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v want %v", got, want)
		}
	})
}

// FuzzParseKeySet: no key set panics the loader.
func FuzzParseKeySet(f *testing.F) {
	f.Add(jwks(f, newKey(f, ES256, "a"), newKey(f, EdDSA, "b")))
	f.Add([]byte(`{"keys":[{"kty":"oct","alg":"HS256","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := ParseKeySet(b)
		if err == nil && set.Len() == 0 {
			t.Fatal("an accepted set has keys")
		}
	})
}
