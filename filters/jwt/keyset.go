package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// keyKind is what a key can verify.
type keyKind uint8

const (
	kindNone keyKind = iota
	kindOct
	kindRSA
	kindP256
	kindP384
	kindP521
	kindEd25519
)

// Key-set policy limits.
const (
	// MinRSABits is the smallest RSA modulus accepted in a key set.
	MinRSABits = 2048
	// MaxKeys bounds the keys one set may hold.
	MaxKeys = 100
	// minHMACBytes is the shortest HMAC secret accepted (RFC 7518 §3.2: HS256 needs 256 bits).
	minHMACBytes = 32
)

// Key is one verification key, converted to its crypto type once, when its set is
// loaded. Keys are shared between successive sets of a remote provider while their
// content is unchanged, so cached verifications survive a refresh that keeps them.
type Key struct {
	// ID is the JWK "kid" ("" when absent).
	ID string
	// Alg is the JWK "alg" (zero when absent): it fixes the signature scheme and the
	// minimum hash of the tokens the key verifies (see ParseKeySet).
	Alg Alg

	kind   keyKind
	rsa    *rsa.PublicKey
	ec     *ecdsa.PublicKey
	ed     ed25519.PublicKey
	secret []byte
	// identity is kid, alg and the RFC 7638 thumbprint: equal identity, same key.
	identity string
	// retired is set when a refresh drops the key; verifications cached with it end.
	retired atomic.Bool
}

// fits reports whether k may verify a signature made with a: a's key type (and
// curve) is k's, an HMAC secret is at least as long as a's hash, and when the JWK
// names an alg, a uses the same scheme with a hash at least as strong.
func (k *Key) fits(a Alg) bool {
	if a.kind() != k.kind {
		return false
	}
	if k.kind == kindOct && len(k.secret) < a.hashSize() {
		return false
	}
	return k.Alg == 0 || (k.Alg.scheme() == a.scheme() && a.hashSize() >= k.Alg.hashSize())
}

// Retired reports whether a refresh removed k from its provider's key set.
func (k *Key) Retired() bool { return k.retired.Load() }

// KeySet is an immutable set of verification keys that passed the load policy.
type KeySet struct {
	keys      []*Key
	byKID     map[string]*Key
	noKID     []*Key
	symmetric bool
}

// Len returns the number of usable keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Keys returns the usable keys. The slice must not be modified.
func (s *KeySet) Keys() []*Key { return s.keys }

// Symmetric reports whether the set holds HMAC secrets (it then holds nothing else).
func (s *KeySet) Symmetric() bool { return s.symmetric }

// Supported returns the algorithms some key of the set can verify.
func (s *KeySet) Supported() AlgSet {
	var set AlgSet
	for _, k := range s.keys {
		for a := Alg(1); a < algCount; a++ {
			if k.fits(a) {
				set = set.With(a)
			}
		}
	}
	return set
}

// ParseKeySet parses a JWK Set (or a single JWK) and applies the load policy
// (conformance README, Wycheproof key-set cases). The whole set is rejected when: the
// JSON is not strict (duplicate members), it mixes HMAC secrets with public keys, two
// usable keys share a kid, an RSA key is shorter than MinRSABits, has a bad exponent
// or the ROCA fingerprint, an EC point is not on its curve, a key's alg is unknown or
// does not fit its type or curve, an HMAC secret is shorter than 256 bits, or no
// usable key remains. Keys meant for encryption ("use": "enc", key_ops without
// "verify", a JWE alg) are skipped. Private keys contribute their public half.
//
// A token's alg must fit the key's type (RSA: RS*/PS*; EC: the ES alg of its curve;
// OKP: EdDSA; oct: HS* with a secret at least as long as the hash). When the JWK names
// an alg, the token must also use that scheme (RS, PS, HS, ES) with a hash at least as
// strong: a PS512 key rejects RS256 and PS256 tokens (Wycheproof "WrongPrimitive"),
// while RFC 7520's key labelled PS256 verifies its PS384 example, as Wycheproof expects.
func ParseKeySet(data []byte) (*KeySet, error) {
	members, err := splitJWKS(data)
	if err != nil {
		return nil, err
	}
	s := &KeySet{byKID: make(map[string]*Key, len(members))}
	var asym bool
	for i, m := range members {
		k, err := convertKey(m)
		if err != nil {
			kid, _ := m["kid"].(string)
			return nil, fmt.Errorf("jwks key %d (kid %q): %w", i, kid, err)
		}
		if k == nil {
			continue // not a signature key
		}
		if k.ID != "" {
			if _, dup := s.byKID[k.ID]; dup {
				return nil, fmt.Errorf("jwks: duplicate kid %q", k.ID)
			}
			s.byKID[k.ID] = k
		} else {
			s.noKID = append(s.noKID, k)
		}
		s.keys = append(s.keys, k)
		if k.kind == kindOct {
			s.symmetric = true
		} else {
			asym = true
		}
	}
	switch {
	case s.symmetric && asym:
		return nil, errors.New("jwks: mixes symmetric secrets and public keys")
	case len(s.keys) == 0:
		return nil, errors.New("jwks: no signature verification keys")
	}
	return s, nil
}

// splitJWKS decodes a JWK Set or a single JWK strictly into its key objects.
func splitJWKS(data []byte) ([]map[string]any, error) {
	doc, err := parseJSONObject(data)
	if err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	raw, isSet := doc["keys"]
	if !isSet {
		return []map[string]any{doc}, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, errors.New(`parse jwks: "keys" is not an array`)
	}
	if len(list) > MaxKeys {
		return nil, fmt.Errorf("parse jwks: more than %d keys", MaxKeys)
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		if out[i], ok = v.(map[string]any); !ok {
			return nil, fmt.Errorf("parse jwks: key %d is not an object", i)
		}
	}
	return out, nil
}

// jweAlgs are key algorithms for encryption; keys carrying them are skipped.
var jweAlgs = []string{"RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512",
	"A128KW", "A192KW", "A256KW", "dir", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW",
	"ECDH-ES+A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW", "PBES2-HS256+A128KW",
	"PBES2-HS384+A192KW", "PBES2-HS512+A256KW", "A128GCM", "A192GCM", "A256GCM"}

// convertKey applies the per-key policy to one JWK object. It returns nil, nil for a
// key that is not meant for signature verification.
func convertKey(m map[string]any) (*Key, error) {
	if use, ok := m["use"]; ok && use != "sig" {
		return nil, nil
	}
	if ops, ok := m["key_ops"]; ok {
		list, _ := ops.([]any)
		if !slices.Contains(list, any("verify")) {
			return nil, nil
		}
	}
	k := &Key{}
	var ok bool
	if v, has := m["kid"]; has {
		if k.ID, ok = v.(string); !ok {
			return nil, errors.New(`"kid" is not a string`)
		}
	}
	if v, has := m["alg"]; has {
		name, _ := v.(string)
		switch {
		case slices.Contains(jweAlgs, name):
			return nil, nil
		case name == "Ed25519": // RFC 9864 fully-specified name
			k.Alg = EdDSA
		case name == "ES521": // a common misspelling naming P-521 (RFC 7520-derived data)
			k.Alg = ES512
		default:
			if k.Alg, ok = ParseAlg(name); !ok {
				return nil, fmt.Errorf("alg %q is not a supported signature algorithm", name)
			}
		}
		// jwx validates alg names against its own registry; the policy above is ours.
		delete(m, "alg")
	}
	jk, err := parseJWK(m)
	if err != nil {
		return nil, err
	}
	if err := k.setMaterial(jk); err != nil {
		return nil, err
	}
	if k.Alg != 0 && !k.fits(k.Alg) {
		return nil, fmt.Errorf("alg %s does not fit the key", k.Alg)
	}
	tp, err := jk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint: %w", err)
	}
	k.identity = k.ID + "\x00" + k.Alg.String() + "\x00" + base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// parseJWK converts one JWK object with jwx and validates it (EC points on the curve,
// field lengths).
func parseJWK(m map[string]any) (jwk.Key, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode jwk: %w", err)
	}
	jk, err := jwk.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse jwk: %w", err)
	}
	if err := jk.Validate(); err != nil {
		return nil, fmt.Errorf("invalid key: %w", err)
	}
	return jk, nil
}

// setMaterial stores the public part of jk and checks its strength.
func (k *Key) setMaterial(jk jwk.Key) error {
	var raw any
	if err := jwk.Export(jk, &raw); err != nil {
		return fmt.Errorf("unsupported key: %w", err)
	}
	return k.setRaw(raw)
}

// setRaw stores the public part of a crypto key and checks its strength.
func (k *Key) setRaw(raw any) error {
	switch v := raw.(type) {
	case *rsa.PrivateKey:
		return k.setRaw(&v.PublicKey)
	case *rsa.PublicKey:
		if err := checkRSA(v); err != nil {
			return err
		}
		k.kind, k.rsa = kindRSA, v
	case *ecdsa.PrivateKey:
		return k.setRaw(&v.PublicKey)
	case *ecdsa.PublicKey:
		switch v.Curve {
		case elliptic.P256():
			k.kind = kindP256
		case elliptic.P384():
			k.kind = kindP384
		case elliptic.P521():
			k.kind = kindP521
		default:
			return errors.New("unsupported elliptic curve")
		}
		k.ec = v
	case ed25519.PrivateKey:
		return k.setRaw(v.Public())
	case ed25519.PublicKey:
		if len(v) != ed25519.PublicKeySize {
			return errors.New("invalid Ed25519 key")
		}
		k.kind, k.ed = kindEd25519, v
	case []byte:
		if len(v) < minHMACBytes {
			return fmt.Errorf("HMAC secret shorter than %d bits", minHMACBytes*8)
		}
		k.kind, k.secret = kindOct, slices.Clone(v)
	default:
		return fmt.Errorf("unsupported key type %T", raw)
	}
	return nil
}

// checkRSA applies the RSA policy: modulus size, exponent, ROCA.
func checkRSA(pub *rsa.PublicKey) error {
	switch {
	case pub.N == nil || pub.N.BitLen() < MinRSABits:
		return fmt.Errorf("RSA key shorter than %d bits", MinRSABits)
	case pub.E < 3 || pub.E%2 == 0:
		return errors.New("RSA public exponent must be odd and at least 3")
	case rocaFingerprint(pub.N):
		return errors.New("RSA key has the ROCA weakness (CVE-2017-15361)")
	}
	return nil
}
