package httpsig

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func TestSignVerifyEveryAlgorithm(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv := testRSAKey(t)
	signers := map[Algorithm]crypto.Signer{Ed25519: edPriv, ECDSAP256SHA256: ecPriv, RSAPSSSHA512: rsaPriv, RSAV15SHA256: rsaPriv}
	for alg, priv := range signers {
		t.Run(string(alg), func(t *testing.T) {
			sk, err := NewPrivateKey("k-"+string(alg), alg, priv)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := NewPublicKey(sk.ID(), alg, priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			m := signedRequest(t, sk, SignerOptions{IncludeAlg: true}, "payload")
			if _, err := newTestVerifier(t, Policy{}, pk).Verify(context.Background(), m); err != nil {
				t.Fatalf("verify: %v", err)
			}
			m.RawPath = "/other"
			if _, err := newTestVerifier(t, Policy{}, pk).Verify(context.Background(), m); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered: %v", err)
			}
			if pk.CanSign() {
				t.Fatal("public key claims to sign")
			}
		})
	}
	// Key confusion: an ed25519 key does not suit an RSA algorithm and vice versa.
	if _, err := NewPublicKey("x", RSAPSSSHA512, edPriv.Public()); err == nil {
		t.Fatal("ed25519 key accepted for rsa-pss-sha512")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewPublicKey("x", ECDSAP256SHA256, p384.Public()); err == nil {
		t.Fatal("P-384 key accepted for ecdsa-p256-sha256")
	}
}

func TestSignRequestAndTransport(t *testing.T) {
	key := mustHMAC(t, "client-1", testSecret)
	v, err := NewVerifier(NewKeySet(key), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := v.Verify(r.Context(), MessageFromRequest(r, body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, res.Key.ID()+":"+string(body))
	}))
	defer srv.Close()
	s, err := NewSigner(key, SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: s.Transport(srv.Client().Transport)}
	for _, body := range []string{"", `{"a":1}`} {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/x/%7Ey?q=1&r=a+b", rd)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "client-1:"+body {
			t.Fatalf("body %q: %d %s", body, resp.StatusCode, got)
		}
		if req.Header.Get("Signature") != "" {
			t.Fatal("transport modified the caller's request")
		}
	}
	big, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(strings.Repeat("x", 64)))
	small, _ := NewSigner(key, SignerOptions{MaxBody: 16})
	if err := small.SignRequest(big); err == nil {
		t.Fatal("body over MaxBody signed")
	}
}

func BenchmarkSignatureBase(b *testing.B) {
	key := mustHMAC(b, "client-1", testSecret)
	m := signedRequest(b, key, SignerOptions{Components: []string{"@method", "@target-uri", "@authority", "content-type", "content-digest"}}, strings.Repeat("x", 1024))
	sigs, err := ParseSignatures(m.Header)
	if err != nil {
		b.Fatal(err)
	}
	s := &sigs[0]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = appendBase(buf[:0], m, s.Components, s.Params, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHMAC1KiB(b *testing.B) {
	key := mustHMAC(b, "client-1", testSecret)
	m := signedRequest(b, key, SignerOptions{}, strings.Repeat("x", 1024))
	v := newTestVerifier(b, Policy{}, key)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		if _, err := v.Verify(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
