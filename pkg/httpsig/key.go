package httpsig

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"sync"
)

// Algorithm is an HTTP Message Signature algorithm (RFC 9421 Section 3.3).
type Algorithm string

// The supported algorithms.
const (
	HMACSHA256      Algorithm = "hmac-sha256"
	Ed25519         Algorithm = "ed25519"
	ECDSAP256SHA256 Algorithm = "ecdsa-p256-sha256"
	RSAPSSSHA512    Algorithm = "rsa-pss-sha512"
	RSAV15SHA256    Algorithm = "rsa-v1_5-sha256"
)

// Algorithms lists every supported algorithm.
var Algorithms = []Algorithm{HMACSHA256, Ed25519, ECDSAP256SHA256, RSAPSSSHA512, RSAV15SHA256}

// Minimum key sizes enforced by the constructors.
const (
	MinHMACKeyBytes = 16   // shared secrets shorter than this are rejected
	MinRSABits      = 2048 // RSA moduli shorter than this are rejected
)

// Key is one prepared key for one algorithm and key id. It verifies, and signs when
// built with a private key or a secret. Build keys at load time; they are safe for
// concurrent use.
type Key struct {
	id     string
	alg    Algorithm
	secret []byte
	pub    crypto.PublicKey
	priv   crypto.Signer
	macs   sync.Pool // of hash.Hash keyed with secret (hmac-sha256)
}

// ID returns the key id.
func (k *Key) ID() string { return k.id }

// Algorithm returns the key's algorithm.
func (k *Key) Algorithm() Algorithm { return k.alg }

// CanSign reports whether the key can sign.
func (k *Key) CanSign() bool { return k.secret != nil || k.priv != nil }

// NewHMACKey returns an hmac-sha256 key. The secret is copied; it must be at least
// MinHMACKeyBytes long. It is the raw key: a base64 secret must be decoded first.
func NewHMACKey(id string, secret []byte) (*Key, error) {
	if len(secret) < MinHMACKeyBytes {
		return nil, fmt.Errorf("key %q: hmac secret shorter than %d bytes", id, MinHMACKeyBytes)
	}
	return &Key{id: id, alg: HMACSHA256, secret: append([]byte(nil), secret...)}, nil
}

// NewPublicKey returns a verification key: ed25519.PublicKey, *ecdsa.PublicKey on
// P-256, or *rsa.PublicKey (at least MinRSABits) matching alg.
func NewPublicKey(id string, alg Algorithm, pub crypto.PublicKey) (*Key, error) {
	if err := checkPublic(alg, pub); err != nil {
		return nil, fmt.Errorf("key %q: %w", id, err)
	}
	return &Key{id: id, alg: alg, pub: pub}, nil
}

// NewPrivateKey returns a signing (and verifying) key from a private key whose public
// half suits alg (see NewPublicKey).
func NewPrivateKey(id string, alg Algorithm, priv crypto.Signer) (*Key, error) {
	if priv == nil {
		return nil, fmt.Errorf("key %q: nil private key", id)
	}
	if err := checkPublic(alg, priv.Public()); err != nil {
		return nil, fmt.Errorf("key %q: %w", id, err)
	}
	return &Key{id: id, alg: alg, pub: priv.Public(), priv: priv}, nil
}

func checkPublic(alg Algorithm, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if alg == Ed25519 && len(k) == ed25519.PublicKeySize {
			return nil
		}
	case *ecdsa.PublicKey:
		if alg == ECDSAP256SHA256 && k.Curve == elliptic.P256() {
			return nil
		}
	case *rsa.PublicKey:
		if alg != RSAPSSSHA512 && alg != RSAV15SHA256 {
			break
		}
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("rsa key shorter than %d bits", MinRSABits)
		}
		return nil
	}
	return fmt.Errorf("a %T does not suit algorithm %q", pub, alg)
}

// ParseKeyPEM parses a PEM key for alg: a public key (PKIX "PUBLIC KEY" or PKCS#1
// "RSA PUBLIC KEY") gives a verification key; a private key (PKCS#8 "PRIVATE KEY",
// PKCS#1 "RSA PRIVATE KEY", SEC 1 "EC PRIVATE KEY") gives a signing key.
func ParseKeyPEM(id string, alg Algorithm, data []byte) (*Key, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("key %q: no PEM block", id)
	}
	var (
		key any
		err error
	)
	switch blk.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("key %q: unsupported PEM block %q", id, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", id, err)
	}
	if s, ok := key.(crypto.Signer); ok {
		return NewPrivateKey(id, alg, s)
	}
	return NewPublicKey(id, alg, key)
}

func (k *Key) mac() hash.Hash {
	if h, ok := k.macs.Get().(hash.Hash); ok {
		h.Reset()
		return h
	}
	return hmac.New(sha256.New, k.secret)
}

// Verify reports whether sig is a valid signature of the signature base under k.
func (k *Key) Verify(base, sig []byte) bool {
	switch k.alg {
	case HMACSHA256:
		h := k.mac()
		h.Write(base)
		var sum [sha256.Size]byte
		ok := hmac.Equal(h.Sum(sum[:0]), sig)
		k.macs.Put(h)
		return ok
	case Ed25519:
		return ed25519.Verify(k.pub.(ed25519.PublicKey), base, sig)
	case ECDSAP256SHA256:
		if len(sig) != 64 {
			return false
		}
		d := sha256.Sum256(base)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.pub.(*ecdsa.PublicKey), d[:], r, s)
	case RSAPSSSHA512:
		d := sha512.Sum512(base)
		opts := &rsa.PSSOptions{SaltLength: 64, Hash: crypto.SHA512}
		return rsa.VerifyPSS(k.pub.(*rsa.PublicKey), crypto.SHA512, d[:], sig, opts) == nil
	case RSAV15SHA256:
		d := sha256.Sum256(base)
		return rsa.VerifyPKCS1v15(k.pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig) == nil
	}
	return false
}

// Sign signs a signature base with k (ECDSA in the raw r||s form).
func (k *Key) Sign(base []byte) ([]byte, error) {
	if k.alg == HMACSHA256 {
		h := k.mac()
		h.Write(base)
		out := h.Sum(nil)
		k.macs.Put(h)
		return out, nil
	}
	if k.priv == nil {
		return nil, fmt.Errorf("key %q: no private key", k.id)
	}
	switch k.alg {
	case Ed25519:
		return k.priv.Sign(rand.Reader, base, crypto.Hash(0))
	case ECDSAP256SHA256:
		d := sha256.Sum256(base)
		der, err := k.priv.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.id, err)
		}
		return ecdsaRaw(der)
	case RSAPSSSHA512:
		d := sha512.Sum512(base)
		return k.priv.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: 64, Hash: crypto.SHA512})
	case RSAV15SHA256:
		d := sha256.Sum256(base)
		return k.priv.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("key %q: unsupported algorithm %q", k.id, k.alg)
}

// ecdsaRaw converts an ASN.1 ECDSA signature to the fixed-size r||s form.
func ecdsaRaw(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("ecdsa: malformed signature from signer")
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

// KeyResolver finds the keys for a key id. Several keys may share an id (rotation:
// each is tried). It returns ErrUnknownKey (possibly wrapped) when there is none.
type KeyResolver interface {
	ResolveKeys(ctx context.Context, keyID string) ([]*Key, error)
}

// KeySet is a static KeyResolver.
type KeySet struct{ byID map[string][]*Key }

// NewKeySet returns a KeySet of keys; keys with the same id are all tried.
func NewKeySet(keys ...*Key) *KeySet {
	s := &KeySet{byID: make(map[string][]*Key, len(keys))}
	for _, k := range keys {
		s.byID[k.id] = append(s.byID[k.id], k)
	}
	return s
}

// ResolveKeys implements KeyResolver.
func (s *KeySet) ResolveKeys(_ context.Context, keyID string) ([]*Key, error) {
	if ks, ok := s.byID[keyID]; ok {
		return ks, nil
	}
	return nil, ErrUnknownKey
}
