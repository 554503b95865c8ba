package jwt

import (
	"crypto"
	"fmt"
	"strings"
)

// Alg is a JWS signature algorithm (RFC 7518 §3, RFC 8037). The zero value is no
// algorithm; "none" has no Alg at all, so it can never be allowed.
type Alg uint8

// The supported algorithms.
const (
	HS256 Alg = iota + 1
	HS384
	HS512
	RS256
	RS384
	RS512
	PS256
	PS384
	PS512
	ES256
	ES384
	ES512
	EdDSA
	algCount
)

var algNames = [algCount]string{"", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// String returns the JOSE name of a.
func (a Alg) String() string {
	if a > 0 && a < algCount {
		return algNames[a]
	}
	return fmt.Sprintf("alg(%d)", uint8(a))
}

// ParseAlg returns the algorithm named s (case-sensitive, as RFC 7515 requires).
// "none" and unknown names return false.
func ParseAlg(s string) (Alg, bool) {
	for a := Alg(1); a < algCount; a++ {
		if algNames[a] == s {
			return a, true
		}
	}
	return 0, false
}

// Symmetric reports whether a is an HMAC algorithm.
func (a Alg) Symmetric() bool { return a >= HS256 && a <= HS512 }

// hash returns the digest a signs over (0 for EdDSA, which hashes internally).
func (a Alg) hash() crypto.Hash {
	switch a {
	case HS256, RS256, PS256, ES256:
		return crypto.SHA256
	case HS384, RS384, PS384, ES384:
		return crypto.SHA384
	case HS512, RS512, PS512, ES512:
		return crypto.SHA512
	}
	return 0
}

// scheme returns the signature scheme family of a: 'H'MAC, 'R'SA PKCS #1 v1.5,
// 'P'SS, 'E'CDSA or e'D'DSA.
func (a Alg) scheme() byte {
	if a > 0 && a < algCount {
		return "HHHRRRPPPEEED"[a-1]
	}
	return 0
}

// hashSize returns the digest length of a's hash (0 for EdDSA and unknown values).
func (a Alg) hashSize() int {
	if h := a.hash(); h != 0 {
		return h.Size()
	}
	return 0
}

// kind returns the key kind a needs.
func (a Alg) kind() keyKind {
	switch {
	case a.Symmetric():
		return kindOct
	case a >= RS256 && a <= PS512:
		return kindRSA
	case a == ES256:
		return kindP256
	case a == ES384:
		return kindP384
	case a == ES512:
		return kindP521
	case a == EdDSA:
		return kindEd25519
	}
	return kindNone
}

// AlgSet is a set of algorithms as a bit mask. The zero value allows nothing.
type AlgSet uint16

// Has reports whether a is in s.
func (s AlgSet) Has(a Alg) bool { return a > 0 && a < algCount && s&(1<<a) != 0 }

// With returns s plus a.
func (s AlgSet) With(a Alg) AlgSet { return s | 1<<a }

// String lists the set's names separated by commas.
func (s AlgSet) String() string {
	var names []string
	for a := Alg(1); a < algCount; a++ {
		if s.Has(a) {
			names = append(names, a.String())
		}
	}
	return strings.Join(names, ",")
}

// AsymmetricAlgs is every supported public-key algorithm: the default allow list.
var AsymmetricAlgs = func() AlgSet {
	var s AlgSet
	for a := RS256; a < algCount; a++ {
		s = s.With(a)
	}
	return s
}()

// AllAlgs is every supported algorithm, HMAC included.
var AllAlgs = AsymmetricAlgs.With(HS256).With(HS384).With(HS512)

// ParseAlgSet parses algorithm names. "none" and unknown names are errors.
func ParseAlgSet(names []string) (AlgSet, error) {
	var s AlgSet
	for _, n := range names {
		if strings.EqualFold(n, "none") {
			return 0, fmt.Errorf("algorithm %q can never be allowed", n)
		}
		a, ok := ParseAlg(n)
		if !ok {
			return 0, fmt.Errorf("unknown algorithm %q", n)
		}
		s = s.With(a)
	}
	return s, nil
}
