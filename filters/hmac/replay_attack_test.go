package hmac

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// Replays found by a second reader's review; each was accepted before replay keys
// described what was signed rather than the bytes of the signature that matched.

// An ECDSA signature (r, s) has a second valid form (r, n-s) over the same base: a
// captured request without a nonce must not pass again in the other form.
func TestECDSASecondFormIsAReplay(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Now: clock, Clients: []Client{{Subject: "svc", Keys: []Key{
		{ID: "ec-1", Algorithm: httpsig.ECDSAP256SHA256, PublicKey: &priv.PublicKey}}}}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := httpsig.NewPrivateKey("ec-1", httpsig.ECDSAP256SHA256, priv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := httpsig.NewSigner(key, httpsig.SignerOptions{NoNonce: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	m := &httpsig.Message{Method: "POST", Scheme: "https", Authority: "api.example.com",
		RawPath: "/v1/transfer", Header: http.Header{}, Body: []byte(`{"amount":10}`)}
	if err := s.Sign(m); err != nil {
		t.Fatal(err)
	}
	req := func(h http.Header) *engine.Request { return signedRequest(m, h) }
	if _, err := a.Authenticate(context.Background(), req(m.Header)); err != nil {
		t.Fatalf("original: %v", err)
	}
	// Attacker: replace s by n - s in the captured Signature header.
	sigRe := regexp.MustCompile(`sig1=:([^:]+):`)
	mm := sigRe.FindStringSubmatch(m.Header.Get("Signature"))
	raw, _ := base64.StdEncoding.DecodeString(mm[1])
	sv := new(big.Int).SetBytes(raw[32:])
	sv.Sub(elliptic.P256().Params().N, sv)
	mal := append([]byte(nil), raw[:32]...)
	mal = append(mal, sv.FillBytes(make([]byte, 32))...)
	h := m.Header.Clone()
	h.Set("Signature", "sig1=:"+base64.StdEncoding.EncodeToString(mal)+":")
	if id, err := a.Authenticate(context.Background(), req(h)); err == nil {
		t.Fatalf("replay with malleated ECDSA signature accepted as %q", id.Subject)
	}
}

// A Stripe delivery signed with two secrets (both configured during a rotation) must
// not pass again carrying only its other v1.
func TestStripeRotationDeliveryIsAReplay(t *testing.T) {
	a := newHook(t, SchemeStripe, nil) // keys gh-1 (hookSecret) and gh-2 (secretNew)
	body := []byte(`{"id":"evt_1","type":"charge.succeeded"}`)
	ts := now.Unix()
	v1old := SignStripe(hookSecret, ts, body)
	v1new := SignStripe(secretNew, ts, body)
	both := v1old + ",v1=" + v1new[len("t="+strconv.FormatInt(ts, 10)+",v1="):]
	if _, err := a.Authenticate(context.Background(), webhookRequest(map[string]string{"Stripe-Signature": both}, string(body))); err != nil {
		t.Fatalf("original delivery: %v", err)
	}
	// Replay of the same delivery, keeping only the second v1.
	if _, err := a.Authenticate(context.Background(), webhookRequest(map[string]string{"Stripe-Signature": v1new}, string(body))); err == nil {
		t.Fatal("replayed Stripe delivery accepted (second v1 of the same t and body)")
	}
}

// A request carrying two valid signatures (a client signing with its old and new key
// during a rotation, each with its nonce) must not pass again with only the second.
func TestEachVerifiedLabelIsRemembered(t *testing.T) {
	a := newRFC(t, nil)
	m := &httpsig.Message{Method: "POST", Scheme: "https", Authority: "api.example.com",
		RawPath: "/v1/orders", Header: http.Header{}, Body: []byte(`{"amount":10}`)}
	for _, k := range []struct {
		label  string
		secret []byte
	}{{"sig1", secretOld}, {"sig2", secretNew}} {
		key, _ := httpsig.NewHMACKey("billing-1", k.secret)
		s, err := httpsig.NewSigner(key, httpsig.SignerOptions{Label: k.label, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Sign(m); err != nil {
			t.Fatal(err)
		}
	}
	req := func(h http.Header) *engine.Request { return signedRequest(m, h) }
	if _, err := a.Authenticate(context.Background(), req(m.Header)); err != nil {
		t.Fatalf("original: %v (Signature-Input %q)", err, m.Header.Values("Signature-Input"))
	}
	if _, err := a.Authenticate(context.Background(), req(m.Header)); err == nil {
		t.Fatal("identical replay accepted")
	}
	// Keep only sig2 (the fields may be one line or two).
	h := m.Header.Clone()
	in, sg := h.Values("Signature-Input"), h.Values("Signature")
	pick := func(vs []string) string {
		for _, v := range vs {
			if len(v) > 5 && v[:5] == "sig2=" {
				return v
			}
		}
		t.Fatalf("no sig2 line in %q", vs)
		return ""
	}
	h.Set("Signature-Input", pick(in))
	h.Set("Signature", pick(sg))
	if _, err := a.Authenticate(context.Background(), req(h)); err == nil {
		t.Fatal("replay carrying only the second signature accepted")
	}
}

// The generic scheme's MAC input ends the target with a newline, which no request
// target holds: with a "." there, a signature of GET /pay?amount=1.5 and an empty body
// verified GET /pay?amount=1 with the body "5.".
func TestGenericTargetBodyBoundary(t *testing.T) {
	a := newHook(t, SchemeGeneric, nil)
	ts := now.Unix()
	sig := SignGeneric(hookSecret, ts, "GET", "/pay?amount=1.5", nil)
	r := &engine.Request{Method: "GET", Scheme: "https", Host: "hooks.example.com", RawPath: "/pay",
		RawQuery: "amount=1", Header: http.Header{}, Body: []byte("5."), HasBody: true}
	r.Header.Set("X-Signature", sig)
	r.Header.Set("X-Timestamp", strconv.FormatInt(ts, 10))
	if _, err := a.Authenticate(context.Background(), r); err == nil {
		t.Fatal("signature of GET /pay?amount=1.5 accepted for GET /pay?amount=1 with body \"5.\"")
	}
	// The documented input, computed independently: "<ts>.<METHOD>.<path?query>\n<body>".
	mac := hmac.New(sha256.New, hookSecret)
	mac.Write([]byte(strconv.FormatInt(ts, 10) + ".POST./pay?amount=1\n{\"ok\":true}"))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); SignGeneric(hookSecret, ts, "POST", "/pay?amount=1", []byte(`{"ok":true}`)) != want {
		t.Fatal("SignGeneric does not sign the documented input")
	}
}

// signedRequest is the engine request for the signed message m, with header h (m's own,
// or an attacker's edit of it).
func signedRequest(m *httpsig.Message, h http.Header) *engine.Request {
	return &engine.Request{Method: m.Method, Scheme: m.Scheme, Host: m.Authority, RawPath: m.RawPath,
		Header: h, Body: m.Body, HasBody: true}
}
