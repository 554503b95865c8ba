package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// DigestAlgorithm is a Content-Digest hash algorithm key (RFC 9530 Section 5).
type DigestAlgorithm string

// The supported digest algorithms. Insecure ones (md5, sha, ...) are never accepted.
const (
	DigestSHA256 DigestAlgorithm = "sha-256"
	DigestSHA512 DigestAlgorithm = "sha-512"
)

// DigestAlgorithms are the algorithms accepted when none are configured.
var DigestAlgorithms = []DigestAlgorithm{DigestSHA256, DigestSHA512}

// ContentDigest returns a Content-Digest field value for body, e.g.
// "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:".
func ContentDigest(alg DigestAlgorithm, body []byte) (string, error) {
	sum, ok := digestOf(alg, body)
	if !ok {
		return "", fmt.Errorf("unsupported digest algorithm %q", alg)
	}
	b := append([]byte(alg), '=')
	b, err := sfv.AppendValue(b, sfv.ByteSequence(sum))
	return string(b), err
}

func digestOf(alg DigestAlgorithm, body []byte) ([]byte, bool) {
	switch alg {
	case DigestSHA256:
		s := sha256.Sum256(body)
		return s[:], true
	case DigestSHA512:
		s := sha512.Sum512(body)
		return s[:], true
	}
	return nil, false
}

// VerifyContentDigest checks a Content-Digest (or Repr-Digest) field value against
// body. Every member with an algorithm in accepted (nil: DigestAlgorithms) must be a
// byte sequence equal to the body's digest, and there must be at least one; members
// of other algorithms are ignored. A value that is not a strict structured
// dictionary is ErrMalformed; anything else that fails is ErrDigestMismatch.
func VerifyContentDigest(field string, body []byte, accepted []DigestAlgorithm) error {
	d, err := sfv.ParseDictionary(field)
	if err != nil {
		return fmt.Errorf("%w: Content-Digest: %v", ErrMalformed, err)
	}
	if accepted == nil {
		accepted = DigestAlgorithms
	}
	checked := 0
	for i := range d {
		m := &d[i]
		if !acceptedDigest(DigestAlgorithm(m.Key), accepted) {
			continue
		}
		if m.IsInnerList || m.Value.Kind != sfv.KindByteSequence {
			return fmt.Errorf("%w: Content-Digest %s is not a byte sequence", ErrMalformed, m.Key)
		}
		sum, _ := digestOf(DigestAlgorithm(m.Key), body)
		if subtle.ConstantTimeCompare(sum, m.Value.Bytes) != 1 {
			return fmt.Errorf("%w: %s", ErrDigestMismatch, m.Key)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("%w: no accepted algorithm in Content-Digest", ErrDigestMismatch)
	}
	return nil
}

func acceptedDigest(alg DigestAlgorithm, accepted []DigestAlgorithm) bool {
	for _, a := range accepted {
		if a == alg && (a == DigestSHA256 || a == DigestSHA512) {
			return true
		}
	}
	return false
}
