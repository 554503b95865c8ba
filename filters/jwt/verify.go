package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
)

// maxCandidates bounds how many keys one token may make us try when its kid does not
// pick a key, so a set of many keys cannot multiply the cost of a forged token.
const maxCandidates = 4

// VerifyJWS parses token strictly (see ParseCompact) and verifies its signature with a
// key of s. The algorithm must be in allowed and fit the key (type, curve, HMAC secret
// length, the JWK's own alg). A kid selects only among the set's keys; a token without
// kid, or whose kid is absent while the set has keys without kid, tries at most four
// fitting keys. The payload is not interpreted: VerifyJWS is the JWS layer, used by
// the JWT authenticator and the conformance tests alike.
func (s *KeySet) VerifyJWS(token string, allowed AlgSet) (*Compact, *Key, error) {
	c, err := ParseCompact(token)
	if err != nil {
		return nil, nil, err
	}
	k, err := s.verify(c, allowed)
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

// verify finds the key for c and checks the signature.
func (s *KeySet) verify(c *Compact, allowed AlgSet) (*Key, error) {
	a := c.Header.Alg
	if !allowed.Has(a) {
		return nil, errAlgNotAllowed
	}
	candidates := s.keys
	if c.Header.HasKID {
		if k := s.byKID[c.Header.KeyID]; k != nil {
			if !k.fits(a) {
				return nil, errAlgKeyMismatch
			}
			if !verifySignature(k, a, c.SigningInput, c.Signature) {
				return nil, errSignature
			}
			return k, nil
		}
		if len(s.noKID) == 0 {
			return nil, errUnknownKid
		}
		candidates = s.noKID
	}
	tried := 0
	for _, k := range candidates {
		if !k.fits(a) {
			continue
		}
		if tried++; tried > maxCandidates {
			break
		}
		if verifySignature(k, a, c.SigningInput, c.Signature) {
			return k, nil
		}
	}
	switch {
	case c.Header.HasKID:
		return nil, errUnknownKid
	case tried == 0:
		return nil, errAlgKeyMismatch
	}
	return nil, errSignature
}

// pssOptions: RFC 7518 §3.5 fixes the salt length to the hash length.
var pssOptions = [...]*rsa.PSSOptions{
	PS256: {SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256},
	PS384: {SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384},
	PS512: {SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512},
}

// verifySignature checks sig over input with k, which must fit a.
func verifySignature(k *Key, a Alg, input, sig []byte) bool {
	if a == EdDSA {
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, input, sig)
	}
	h := a.hash()
	var buf [sha512.Size]byte
	d := digest(&buf, h, input)
	switch a.kind() {
	case kindOct:
		m := hmac.New(h.New, k.secret)
		m.Write(input)
		var mb [sha512.Size]byte
		return len(sig) == h.Size() && hmac.Equal(m.Sum(mb[:0]), sig)
	case kindRSA:
		if a >= PS256 {
			return rsa.VerifyPSS(k.rsa, h, d, sig, pssOptions[a]) == nil
		}
		return rsa.VerifyPKCS1v15(k.rsa, h, d, sig) == nil
	default:
		return verifyECDSA(k.ec, d, sig)
	}
}

// digest hashes input with h into buf.
func digest(buf *[sha512.Size]byte, h crypto.Hash, input []byte) []byte {
	switch h {
	case crypto.SHA256:
		*(*[sha256.Size]byte)(buf[:sha256.Size]) = sha256.Sum256(input)
	case crypto.SHA384:
		*(*[sha512.Size384]byte)(buf[:sha512.Size384]) = sha512.Sum384(input)
	default:
		*buf = sha512.Sum512(input)
	}
	return buf[:h.Size()]
}

// verifyECDSA checks a JWS ECDSA signature: exactly r||s, each the curve's byte size
// (RFC 7518 §3.4), neither zero (the "psychic signature" r = s = 0 is rejected here
// as well as by crypto/ecdsa, which also rejects values not below the group order).
func verifyECDSA(pub *ecdsa.PublicKey, d, sig []byte) bool {
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r, s := sig[:size], sig[size:]
	if isZero(r) || isZero(s) {
		return false
	}
	var der [2*66 + 12]byte
	return ecdsa.VerifyASN1(pub, d, asn1Signature(der[:0], r, s))
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// asn1Signature appends the DER SEQUENCE { INTEGER r, INTEGER s } to dst. r and s are
// unsigned big-endian, at most 66 bytes, so every length fits the short form.
func asn1Signature(dst, r, s []byte) []byte {
	r, s = trimZeros(r), trimZeros(s)
	rl, sl := len(r)+int(r[0]>>7), len(s)+int(s[0]>>7)
	body := 2 + rl + 2 + sl
	if body < 0x80 {
		dst = append(dst, 0x30, byte(body))
	} else {
		dst = append(dst, 0x30, 0x81, byte(body))
	}
	dst = appendInt(dst, r)
	return appendInt(dst, s)
}

func appendInt(dst, v []byte) []byte {
	if v[0]&0x80 != 0 {
		return append(append(dst, 0x02, byte(len(v)+1), 0), v...)
	}
	return append(append(dst, 0x02, byte(len(v))), v...)
}

func trimZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}
