package httpsig

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

var (
	testNow    = time.Unix(1_700_000_000, 0)
	testClock  = func() time.Time { return testNow }
	testSecret = []byte("0123456789abcdef0123456789abcdef")
)

func mustHMAC(t testing.TB, id string, secret []byte) *Key {
	t.Helper()
	k, err := NewHMACKey(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testRequest(body string) *Message {
	m := &Message{
		Method: "POST", Scheme: "https", Authority: "api.example.com",
		RawPath: "/v1/orders", RawQuery: "id=42", Header: http.Header{"Content-Type": {"application/json"}},
	}
	if body != "" {
		m.Body = []byte(body)
	}
	return m
}

func signedRequest(t testing.TB, key *Key, o SignerOptions, body string) *Message {
	t.Helper()
	if o.Now == nil {
		o.Now = testClock
	}
	s, err := NewSigner(key, o)
	if err != nil {
		t.Fatal(err)
	}
	m := testRequest(body)
	if err := s.Sign(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func newTestVerifier(t testing.TB, p Policy, keys ...*Key) *Verifier {
	t.Helper()
	v, err := NewVerifier(NewKeySet(keys...), p, WithClock(testClock))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAttacks(t *testing.T) {
	key := mustHMAC(t, "client-1", testSecret)
	tests := []struct {
		name   string
		sign   SignerOptions
		policy Policy
		mutate func(m *Message)
		want   error // nil: verifies
	}{
		{name: "valid", want: nil},
		{name: "method changed", mutate: func(m *Message) { m.Method = "DELETE" }, want: ErrBadSignature},
		{name: "path changed", mutate: func(m *Message) { m.RawPath = "/v1/admin" }, want: ErrBadSignature},
		{name: "query changed", mutate: func(m *Message) { m.RawQuery = "id=43" }, want: ErrBadSignature},
		{name: "host changed", mutate: func(m *Message) { m.Authority = "evil.example.com" }, want: ErrBadSignature},
		{name: "body changed", mutate: func(m *Message) { m.Body = []byte(`{"amount":1000000}`) }, want: ErrDigestMismatch},
		{name: "digest and body replaced", mutate: func(m *Message) {
			m.Body = []byte("evil")
			d, _ := ContentDigest(DigestSHA256, m.Body)
			m.Header.Set("Content-Digest", d)
		}, want: ErrBadSignature},
		{name: "body missing", mutate: func(m *Message) { m.BodyMissing = true }, want: ErrBodyMissing},
		{name: "body truncated", mutate: func(m *Message) { m.BodyTruncated = true }, want: ErrBodyTruncated},
		{name: "no digest on body", sign: SignerOptions{Digest: NoDigest}, want: ErrMissingComponent},
		{name: "no digest required", sign: SignerOptions{Digest: NoDigest}, policy: Policy{DigestRequired: DigestOptional}},
		{name: "required component missing", sign: SignerOptions{Components: []string{"@method"}}, want: ErrMissingComponent},
		{name: "extra required", policy: Policy{Required: []string{"@method", "content-type"}}, want: ErrMissingComponent},
		{name: "created too old", sign: SignerOptions{Now: func() time.Time { return testNow.Add(-10 * time.Minute) }}, want: ErrExpired},
		{name: "created in future", sign: SignerOptions{Now: func() time.Time { return testNow.Add(2 * time.Minute) }}, want: ErrExpired},
		{name: "within skew", sign: SignerOptions{Now: func() time.Time { return testNow.Add(20 * time.Second) }}},
		{name: "age unlimited", sign: SignerOptions{Now: func() time.Time { return testNow.Add(-48 * time.Hour) }}, policy: Policy{MaxAge: -1}},
		{name: "expired", sign: SignerOptions{Expires: time.Second, Now: func() time.Time { return testNow.Add(-time.Minute) }}, want: ErrExpired},
		{name: "expires required", policy: Policy{RequireExpires: true}, want: ErrMissingComponent},
		{name: "nonce required", sign: SignerOptions{NoNonce: true}, policy: Policy{RequireNonce: true}, want: ErrMissingComponent},
		{name: "tag required", policy: Policy{Tag: "orders"}, want: ErrMissingComponent},
		{name: "tag matches", sign: SignerOptions{Tag: "orders"}, policy: Policy{Tag: "orders"}},
		{name: "label selected", sign: SignerOptions{Label: "other"}, policy: Policy{Label: "sig1"}, want: ErrMissingComponent},
		{name: "algorithm not allowed", policy: Policy{Algorithms: []Algorithm{Ed25519}}, want: ErrBadSignature},
		{name: "alg param allowed", sign: SignerOptions{IncludeAlg: true}},
		{name: "keyid unknown", mutate: func(m *Message) { replaceInput(m, `keyid="client-1"`, `keyid="client-2"`) }, want: ErrUnknownKey},
		{name: "keyid absent", mutate: func(m *Message) { replaceInput(m, `;keyid="client-1"`, "") }, want: ErrUnknownKey},
		{name: "alg param lies", mutate: func(m *Message) { replaceInput(m, `;keyid`, `;alg="ed25519";keyid`) }, want: ErrBadSignature},
		{name: "created removed", mutate: func(m *Message) { replaceInput(m, `;created=1700000000`, "") }, want: ErrMissingComponent},
		{name: "component dropped from input", mutate: func(m *Message) { replaceInput(m, `"@method" `, "") }, want: ErrMissingComponent},
		{name: "signature header missing", mutate: func(m *Message) { m.Header.Del("Signature") }, want: ErrMalformed},
		{name: "input header missing", mutate: func(m *Message) { m.Header.Del("Signature-Input") }, want: ErrMalformed},
		{name: "no signature", mutate: func(m *Message) { m.Header.Del("Signature"); m.Header.Del("Signature-Input") }, want: ErrNoSignature},
		{name: "signature not bytes", mutate: func(m *Message) { m.Header.Set("Signature", `sig1="abc"`) }, want: ErrMalformed},
		{name: "label mismatch", mutate: func(m *Message) { m.Header.Set("Signature", `sig2=:AAAA:`) }, want: ErrMalformed},
		{name: "lenient base64", mutate: func(m *Message) {
			v := m.Header.Get("Signature")
			m.Header.Set("Signature", strings.Replace(v, "=:", "==:", 1))
		}, want: ErrMalformed},
		{name: "signature truncated", mutate: func(m *Message) { m.Header.Set("Signature", `sig1=:AAAA:`) }, want: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := signedRequest(t, key, tt.sign, `{"amount":10}`)
			if tt.mutate != nil {
				tt.mutate(m)
			}
			_, err := newTestVerifier(t, tt.policy, key).Verify(context.Background(), m)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func replaceInput(m *Message, old, new string) {
	m.Header.Set("Signature-Input", strings.Replace(m.Header.Get("Signature-Input"), old, new, 1))
}

func TestVerifyKeyRotationAndMultipleSignatures(t *testing.T) {
	oldKey := mustHMAC(t, "client-1", testSecret)
	newKey := mustHMAC(t, "client-1", []byte("fedcba9876543210fedcba9876543210"))
	stranger := mustHMAC(t, "proxy", []byte("proxy-secret-proxy-secret-000000"))
	v := newTestVerifier(t, Policy{}, oldKey, newKey)
	for _, k := range []*Key{oldKey, newKey} {
		res, err := v.Verify(context.Background(), signedRequest(t, k, SignerOptions{}, "x"))
		if err != nil || res.Key != k {
			t.Fatalf("rotation: key %p verified by %p: %v", k, res.Key, err)
		}
	}
	// A proxy's signature with an unknown key first, the client's second.
	m := signedRequest(t, stranger, SignerOptions{Label: "proxy"}, "x")
	s, _ := NewSigner(newKey, SignerOptions{Now: testClock})
	if err := s.Sign(m); err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(context.Background(), m)
	if err != nil || res.Signature.Label != "sig1" {
		t.Fatalf("second signature not accepted: %+v %v", res, err)
	}
	if err := s.Sign(m); err == nil {
		t.Fatal("signing twice with the same label succeeded")
	}
}

func TestVerifyBoundsSignatures(t *testing.T) {
	var in, sig []string
	for i := 0; i < maxSignatures+1; i++ {
		l := "s" + strings.Repeat("a", i)
		in = append(in, l+`=("@method");created=1;keyid="k"`)
		sig = append(sig, l+"=:AAAA:")
	}
	if _, err := ParseSignatureFields(strings.Join(in, ", "), strings.Join(sig, ", ")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("too many signatures: %v", err)
	}
}

func TestKeyConstructorsRejectWeakKeys(t *testing.T) {
	if _, err := NewHMACKey("k", []byte("short")); err == nil {
		t.Error("short hmac secret accepted")
	}
	if _, err := NewPublicKey("k", Ed25519, []byte{1, 2, 3}); err == nil {
		t.Error("non-key accepted")
	}
	if _, err := ParseKeyPEM("k", Ed25519, []byte("not pem")); err == nil {
		t.Error("garbage PEM accepted")
	}
	if _, err := NewVerifier(NewKeySet(), Policy{Algorithms: []Algorithm{"hs256"}}); err == nil {
		t.Error("unknown algorithm accepted in policy")
	}
	if _, err := NewVerifier(NewKeySet(), Policy{Required: []string{"@nope"}}); err == nil {
		t.Error("bad required component accepted")
	}
	if _, err := NewSigner(mustHMAC(t, "k", testSecret), SignerOptions{Label: "Bad Label"}); err == nil {
		t.Error("invalid label accepted")
	}
	if _, err := NewSigner(mustHMAC(t, "k", testSecret), SignerOptions{Digest: "md5"}); err == nil {
		t.Error("md5 digest accepted")
	}
}

func TestContentDigestRoundTrip(t *testing.T) {
	for _, alg := range DigestAlgorithms {
		d, err := ContentDigest(alg, []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyContentDigest(d, []byte("hello"), nil); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if err := VerifyContentDigest(d, []byte("hellO"), nil); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("%s tampered: %v", alg, err)
		}
	}
	weak := []string{`md5=:XUFAKrxLKna5cZ2REBfFkg==:`, `sha=:qvTGHdzF6KLavt4PO0gs2a6pQ00=:`, ``}
	for _, w := range weak {
		if err := VerifyContentDigest(w, []byte("hello"), nil); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("%q: %v, want ErrDigestMismatch", w, err)
		}
	}
	if err := VerifyContentDigest(`sha-256="abc"`, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("string digest: %v", err)
	}
	if _, err := ContentDigest("md5", nil); err == nil {
		t.Error("md5 digest computed")
	}
}

func FuzzParseSignatureInput(f *testing.F) {
	f.Add(`sig1=("@method" "@target-uri" "content-digest");created=1618884473;keyid="k";nonce="n";alg="hmac-sha256";tag="t"`, `sig1=:AAAA:`)
	f.Add(`a=(), b=("x";sf "y";key="z");expires=5`, `a=:AA==:, b=:AQID:`)
	f.Add(`sig1=("@query-param";name="a%2")`, `sig1=:AA==:`)
	f.Add(`sig1="x"`, `sig1=:AA==:`)
	f.Fuzz(func(t *testing.T, input, signature string) {
		sigs, err := ParseSignatureFields(input, signature)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for i := range sigs {
			if _, err := appendSignatureParams(nil, sigs[i].Components, sigs[i].Params); err != nil {
				t.Fatalf("parsed signature does not re-serialize: %v", err)
			}
			if len(sigs[i].Value) == 0 {
				t.Fatal("empty signature value accepted")
			}
		}
	})
}
