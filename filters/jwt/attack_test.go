package jwt

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

var b64 = base64.RawURLEncoding

// hs256 signs header.payload with secret, whatever the header says.
func hs256(secret []byte, header, payload string) string {
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64.EncodeToString(m.Sum(nil))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// denialOf runs tok through a and returns the denial; it fails the test otherwise.
func denialOf(t *testing.T, a *Authenticator, tok string) *engine.Denial {
	t.Helper()
	id, err := a.Authenticate(context.Background(), bearerRequest(tok))
	var den *engine.Denial
	if !errors.As(err, &den) {
		t.Fatalf("want a denial, got identity %v, error %v", id, err)
	}
	return den
}

// TestAttacks: each case is a forged or broken token an attacker could send; each
// must be denied with its own stable reason and an RFC 6750 challenge.
func TestAttacks(t *testing.T) {
	es := newKey(t, ES256, "es-1")
	rs := newKey(t, RS256, "rs-1")
	attacker := newKey(t, ES256, "es-1") // same kid, different key
	keys := jwks(t, es, rs)
	a := newAuth(t, keys, nil)
	good := claims(nil)
	payload := mustJSON(t, good)
	esHeader := `{"alg":"ES256","kid":"es-1"}`

	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&sharedRSA(t).PublicKey))})
	attackerJWK := mustJSON(t, attacker.public(t))

	valid := es.token(t, good)
	parts := strings.Split(valid, ".")

	cases := []struct {
		name, token, reason string
	}{
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", ReasonAlgNotAllowed},
		{"alg NONE", b64.EncodeToString([]byte(`{"alg":"NONE"}`)) + "." + parts[1] + ".", ReasonAlgNotAllowed},
		{"HS256 with the RSA public key PEM as secret", hs256(rsaPubPEM, `{"alg":"HS256","kid":"rs-1"}`, payload), ReasonAlgNotAllowed},
		{"HS256 with the RSA modulus as secret", hs256(sharedRSA(t).N.Bytes(), `{"alg":"HS256"}`, payload), ReasonAlgNotAllowed},
		{"RS256 alg on the EC key's kid", rs.raw(t, `{"alg":"RS256","kid":"es-1"}`, payload), ReasonAlgNotAllowed},
		{"attacker key under a known kid", attacker.token(t, good), ReasonSignature},
		{"embedded jwk header is ignored", attacker.raw(t, `{"alg":"ES256","kid":"es-1","jwk":`+attackerJWK+`}`, payload), ReasonSignature},
		{"jwk header without kid is ignored", attacker.raw(t, `{"alg":"ES256","jwk":`+attackerJWK+`}`, payload), ReasonSignature},
		{"jku header is ignored", attacker.raw(t, `{"alg":"ES256","kid":"evil","jku":"https://evil.test/jwks"}`, payload), ReasonUnknownKid},
		{"x5u header is ignored", attacker.raw(t, `{"alg":"ES256","x5u":"https://evil.test/cert"}`, payload), ReasonSignature},
		{"x5c header is ignored", attacker.raw(t, `{"alg":"ES256","x5c":["MIIB"]}`, payload), ReasonSignature},
		{"kid selects only configured keys", es.raw(t, `{"alg":"ES256","kid":"../../etc/passwd"}`, payload), ReasonUnknownKid},
		{"crit with an unknown extension", es.raw(t, `{"alg":"ES256","kid":"es-1","crit":["http://evil.test/x"],"http://evil.test/x":1}`, payload), ReasonCrit},
		{"crit naming exp", es.raw(t, `{"alg":"ES256","kid":"es-1","crit":["exp"]}`, payload), ReasonCrit},
		{"unencoded payload b64 false", es.raw(t, `{"alg":"ES256","kid":"es-1","b64":false}`, payload), ReasonMalformed},
		{"nested token cty JWT", es.raw(t, `{"alg":"ES256","kid":"es-1","cty":"JWT"}`, payload), ReasonNested},
		{"JWE five parts", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", ReasonEncrypted},
		{"enc header", es.raw(t, `{"alg":"ES256","kid":"es-1","enc":"A256GCM"}`, payload), ReasonEncrypted},
		{"psychic signature r=s=0", parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, 64)), ReasonSignature},
		{"signature one byte short", parts[0] + "." + parts[1] + "." + b64.EncodeToString(must(b64.DecodeString(parts[2]))[:63]), ReasonSignature},
		{"non-canonical base64url trailing bits", parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2]), ReasonMalformed},
		{"base64 padding", parts[0] + "." + parts[1] + "." + parts[2] + "==", ReasonMalformed},
		{"standard alphabet", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+", ReasonMalformed},
		{"newline inside a segment", parts[0][:4] + "\n" + parts[0][4:] + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"duplicate alg in header", es.raw(t, `{"alg":"ES256","kid":"es-1","alg":"none"}`, payload), ReasonMalformed},
		{"duplicate escaped key in header", es.raw(t, `{"alg":"ES256","kid":"es-1","\u0061lg":"ES256"}`, payload), ReasonMalformed},
		{"duplicate sub in payload", es.raw(t, esHeader, `{"iss":"https://issuer.test/","aud":"api","exp":`+itoa(testNow.Add(time.Hour).Unix())+`,"sub":"alice","sub":"admin"}`), ReasonMalformed},
		{"payload not JSON", es.raw(t, esHeader, `not json`), ReasonMalformed},
		{"payload invalid UTF-8", es.raw(t, esHeader, "{\"sub\":\"\xff\"}"), ReasonMalformed},
		{"header kid not a string", es.raw(t, `{"alg":"ES256","kid":7}`, payload), ReasonMalformed},
		{"modified payload", parts[0] + "." + b64.EncodeToString([]byte(mustJSON(t, claims(map[string]any{"sub": "admin"})))) + "." + parts[2], ReasonSignature},
		{"token too large", es.token(t, claims(map[string]any{"pad": strings.Repeat("x", 9000)})), ReasonTooLarge},
		{"expired beyond skew", es.token(t, claims(map[string]any{"exp": testNow.Add(-61 * time.Second).Unix()})), ReasonExpired},
		{"not yet valid beyond skew", es.token(t, claims(map[string]any{"nbf": testNow.Add(61 * time.Second).Unix()})), ReasonNotYetValid},
		{"issued in the future", es.token(t, claims(map[string]any{"iat": testNow.Add(2 * time.Minute).Unix()})), ReasonNotYetValid},
		{"no exp", es.token(t, claims(map[string]any{"exp": nil})), ReasonClaim},
		{"exp as a string", es.token(t, claims(map[string]any{"exp": "9999999999"})), ReasonClaim},
		{"wrong issuer", es.token(t, claims(map[string]any{"iss": "https://evil.test/"})), ReasonIssuer},
		{"issuer differs by a slash", es.token(t, claims(map[string]any{"iss": "https://issuer.test"})), ReasonIssuer},
		{"wrong audience", es.token(t, claims(map[string]any{"aud": []string{"other", "more"}})), ReasonAudience},
		{"no audience", es.token(t, claims(map[string]any{"aud": nil})), ReasonAudience},
		{"no subject", es.token(t, claims(map[string]any{"sub": nil})), ReasonClaim},
		{"empty subject", es.token(t, claims(map[string]any{"sub": ""})), ReasonClaim},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			den := denialOf(t, a, tc.token)
			if den.Status != http.StatusUnauthorized || den.Reason != tc.reason {
				t.Fatalf("got %d %s (%s), want 401 %s", den.Status, den.Reason, den.Message, tc.reason)
			}
			challenge := den.Header.Get("Www-Authenticate")
			if !strings.HasPrefix(challenge, `Bearer realm="corp", error="invalid_token", error_description="`) {
				t.Fatalf("challenge %q", challenge)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 8 && (strings.Contains(challenge, part) || strings.Contains(den.Message, part)) {
					t.Fatalf("denial echoes the token: %q", challenge)
				}
			}
		})
	}
	if _, err := a.Authenticate(context.Background(), bearerRequest(valid)); err != nil {
		t.Fatalf("the untampered token must pass: %v", err)
	}
}

// TestHMACConfusionWithExplicitHS: even when HS256 is allowed, an RSA key never
// serves as an HMAC secret.
func TestHMACConfusionWithExplicitHS(t *testing.T) {
	rs := newKey(t, RS256, "rs-1")
	a := newAuth(t, jwks(t, rs), func(o *Options) { o.Algorithms = []string{"RS256", "HS256"} })
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&sharedRSA(t).PublicKey))})
	for _, secret := range [][]byte{pemKey, sharedRSA(t).N.Bytes(), []byte(mustJSON(t, rs.public(t)))} {
		den := denialOf(t, a, hs256(secret, `{"alg":"HS256","kid":"rs-1"}`, mustJSON(t, claims(nil))))
		if den.Reason != ReasonAlgNotAllowed {
			t.Fatalf("reason %s", den.Reason)
		}
	}
}

// TestAlgorithmsOption: HMAC needs an explicit allow list; none is an error.
func TestAlgorithmsOption(t *testing.T) {
	hs := newKey(t, HS256, "hs")
	if _, err := New(Options{Name: "x", Keys: KeysOptions{JWKS: jwks(t, hs)}}); err == nil {
		t.Fatal("HMAC keys without an explicit HS algorithm must be refused")
	}
	if _, err := New(Options{Name: "x", Algorithms: []string{"none"}, Keys: KeysOptions{JWKS: jwks(t, hs)}}); err == nil {
		t.Fatal(`"none" must be refused`)
	}
	a := newAuth(t, jwks(t, hs), func(o *Options) { o.Algorithms = []string{"HS256"} })
	if _, err := a.Authenticate(context.Background(), bearerRequest(hs.token(t, claims(nil)))); err != nil {
		t.Fatal(err)
	}
	es, rs := newKey(t, ES256, "es"), newKey(t, RS256, "rs")
	a = newAuth(t, jwks(t, es, rs), func(o *Options) { o.Algorithms = []string{"RS256"} })
	if den := denialOf(t, a, es.token(t, claims(nil))); den.Reason != ReasonAlgNotAllowed {
		t.Fatal(den.Reason)
	}
}

// TestSkewEdges: exp and nbf within the skew pass; a negative skew option means none.
func TestSkewEdges(t *testing.T) {
	es := newKey(t, ES256, "es")
	a := newAuth(t, jwks(t, es), nil)
	ok := []map[string]any{
		{"exp": testNow.Add(-59 * time.Second).Unix()},
		{"nbf": testNow.Add(59 * time.Second).Unix()},
		{"iat": testNow.Add(59 * time.Second).Unix()},
	}
	for _, c := range ok {
		if _, err := a.Authenticate(context.Background(), bearerRequest(es.token(t, claims(c)))); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
	}
	strict := newAuth(t, jwks(t, es), func(o *Options) { o.ClockSkew = -1 })
	if den := denialOf(t, strict, es.token(t, claims(map[string]any{"exp": testNow.Unix()}))); den.Reason != ReasonExpired {
		t.Fatal(den.Reason)
	}
}

// TestNoKidTriesBoundedKeys: without kid, at most maxCandidates fitting keys are tried.
func TestNoKidTriesBoundedKeys(t *testing.T) {
	var keys []*testKey
	for i := 0; i < 6; i++ {
		keys = append(keys, newKey(t, ES256, ""))
	}
	a := newAuth(t, jwks(t, keys...), nil)
	for i, k := range keys {
		_, err := a.Authenticate(context.Background(), bearerRequest(k.token(t, claims(nil))))
		if (i < maxCandidates) != (err == nil) {
			t.Fatalf("key %d: err %v", i, err)
		}
	}
}

func flipTrailingBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

func itoa(n int64) string { return mustJSONAny(n) }

func mustJSONAny(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
