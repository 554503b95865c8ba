package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// DefaultDevTokenTTL is the lifetime SignDevToken gives a token when ttl is zero and
// the claims carry no exp.
const DefaultDevTokenTTL = time.Hour

// SignDevToken signs claims into a compact JWT with a private key given as PEM
// (PKCS #1, PKCS #8, SEC 1) or as a JWK (an "oct" JWK signs HS256). It is a
// development and test tool: production tokens come from an identity provider.
//
// The algorithm is the JWK's "alg", else RS256 (RSA), ES256/384/512 (by curve), EdDSA
// or HS256. The header carries the JWK's kid, else the RFC 7638 thumbprint. "iat"
// defaults to now and "exp" to now+ttl (DefaultDevTokenTTL when ttl is zero);
// claims that are set win.
func SignDevToken(keyPEMorJWK []byte, claims map[string]any, ttl time.Duration, now time.Time) (string, error) {
	jk, err := parseSigningKey(keyPEMorJWK)
	if err != nil {
		return "", err
	}
	var raw any
	if err := jwk.Export(jk, &raw); err != nil {
		return "", fmt.Errorf("dev token: %w", err)
	}
	alg, err := signingAlg(jk, raw)
	if err != nil {
		return "", err
	}
	kid, _ := jk.KeyID()
	if kid == "" {
		tp, err := jk.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("dev token: thumbprint: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	c := maps.Clone(claims)
	if c == nil {
		c = map[string]any{}
	}
	if ttl <= 0 {
		ttl = DefaultDevTokenTTL
	}
	if _, ok := c["iat"]; !ok {
		c["iat"] = now.Unix()
	}
	if _, ok := c["exp"]; !ok {
		c["exp"] = now.Add(ttl).Unix()
	}
	header, err := json.Marshal(map[string]string{"alg": alg.String(), "typ": "JWT", "kid": kid})
	if err != nil {
		return "", fmt.Errorf("dev token: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("dev token: claims: %w", err)
	}
	return signCompact(raw, alg, header, payload)
}

func parseSigningKey(b []byte) (jwk.Key, error) {
	var (
		jk  jwk.Key
		err error
	)
	if bytes.Contains(b, []byte("-----BEGIN")) {
		jk, err = jwk.ParseKey(b, jwk.WithPEM(true))
	} else {
		jk, err = jwk.ParseKey(b)
	}
	if err != nil {
		return nil, fmt.Errorf("dev token: parse key: %w", err)
	}
	return jk, nil
}

// signingAlg picks the algorithm for a private key.
func signingAlg(jk jwk.Key, raw any) (Alg, error) {
	if a, ok := jk.Algorithm(); ok {
		if alg, ok := ParseAlg(a.String()); ok {
			return alg, nil
		}
		return 0, fmt.Errorf("dev token: unsupported key alg %q", a.String())
	}
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		return RS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, nil
		case elliptic.P384():
			return ES384, nil
		case elliptic.P521():
			return ES512, nil
		}
	case ed25519.PrivateKey:
		return EdDSA, nil
	case []byte:
		return HS256, nil
	}
	return 0, fmt.Errorf("dev token: a private key or secret is required, got %T", raw)
}

// signCompact signs header and payload (JSON) with priv using alg.
func signCompact(priv any, alg Alg, header, payload []byte) (string, error) {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := sign(priv, alg, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func sign(priv any, alg Alg, input []byte) ([]byte, error) {
	h := alg.hash()
	var buf [64]byte
	switch k := priv.(type) {
	case []byte:
		if !alg.Symmetric() {
			return nil, errors.New("sign: a secret signs HMAC algorithms only")
		}
		m := hmac.New(h.New, k)
		m.Write(input)
		return m.Sum(nil), nil
	case *rsa.PrivateKey:
		d := digest(&buf, h, input)
		if alg >= PS256 && alg <= PS512 {
			return rsa.SignPSS(rand.Reader, k, h, d, pssOptions[alg])
		}
		return rsa.SignPKCS1v15(rand.Reader, k, h, d)
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest(&buf, h, input))
		if err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(k, input), nil
	}
	return nil, fmt.Errorf("sign: unsupported key %T", priv)
}

// Report is what Inspect found in a token, without verifying anything.
type Report struct {
	Header map[string]any
	Claims map[string]any // nil when the payload is not a JSON object
	Alg    string
	KeyID  string
	// IssuedAt, NotBefore and ExpiresAt are zero when the claim is absent.
	IssuedAt, NotBefore, ExpiresAt time.Time
	// Problems lists every rule the token breaks that can be judged without keys or
	// configuration (encoding, duplicate keys, alg none, crit, JWE, claim types).
	Problems []string
}

// Inspect decodes a token without trusting it, for "token inspect". It fails only
// when the token is not a three-part compact serialization at all.
func Inspect(token string) (Report, error) {
	var rep Report
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return rep, fmt.Errorf("inspect: a compact JWS has 3 parts, this has %d", len(parts))
	}
	if _, err := ParseCompact(token); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	lenient := base64.RawURLEncoding
	if b, err := lenient.DecodeString(strings.TrimRight(parts[0], "=")); err == nil {
		rep.Header, _ = parseJSONObject(b)
	}
	rep.Alg, _ = rep.Header["alg"].(string)
	rep.KeyID, _ = rep.Header["kid"].(string)
	b, err := lenient.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return rep, nil
	}
	if rep.Claims, err = parseJSONObject(b); err != nil {
		rep.Problems = append(rep.Problems, "payload: "+err.Error())
		return rep, nil
	}
	reg, err := readRegistered(rep.Claims)
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	for _, t := range [...]struct {
		has bool
		v   int64
		dst *time.Time
	}{{reg.hasIat, reg.iat, &rep.IssuedAt}, {reg.hasNbf, reg.nbf, &rep.NotBefore}, {reg.hasExp, reg.exp, &rep.ExpiresAt}} {
		if t.has {
			*t.dst = time.Unix(t.v, 0).UTC()
		}
	}
	if !reg.hasExp {
		rep.Problems = append(rep.Problems, errNoExpiry.Error())
	}
	return rep, nil
}
