package apikey

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Key format constants: "pk_" + id + "_" + secret.
const (
	// Prefix starts every API key. A Bearer token without it belongs to another
	// authenticator.
	Prefix = "pk_"
	// IDLen is the length of the key id that Generate mints: [a-z0-9]{8}. Configured
	// ids may be MinIDLen to MaxIDLen characters (keys issued by other tooling).
	IDLen = 8
	// MinIDLen and MaxIDLen bound an accepted key id.
	MinIDLen, MaxIDLen = 4, 32
	// SecretBytes is the number of random bytes in the secret (280 bits).
	SecretBytes = 35
	// SecretLen is the length of the encoded secret: SecretBytes in unpadded base32.
	SecretLen = SecretBytes * 8 / 5
	// KeyLen is the length of a generated key (an IDLen id).
	KeyLen = len(Prefix) + IDLen + 1 + SecretLen
	// MaxKeyLen is the length of the longest key parseKey accepts (a MaxIDLen id).
	MaxKeyLen = len(Prefix) + MaxIDLen + 1 + SecretLen

	idAlphabet     = "abcdefghijklmnopqrstuvwxyz0123456789"
	secretAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
	hashPrefix     = "sha512:"
)

// The secret is a whole number of base32 quanta, so every encoded character carries
// five random bits and there is no non-canonical trailing character to reject.
var _ = [1]struct{}{}[SecretBytes%5]

var secretEncoding = base32.NewEncoding(secretAlphabet).WithPadding(base32.NoPadding)

// parseKey checks that s is exactly a well-formed key and returns its id, a substring
// of s. It does not allocate.
func parseKey(s string) (id string, ok bool) {
	// The secret has a fixed length, so the id is what lies between the prefix and the
	// separator before it: no ambiguity whatever the id's length.
	idEnd := len(s) - SecretLen - 1
	idLen := idEnd - len(Prefix)
	if idLen < MinIDLen || idLen > MaxIDLen || s[:len(Prefix)] != Prefix || s[idEnd] != '_' {
		return "", false
	}
	for i := len(Prefix); i < idEnd; i++ {
		if !isIDByte(s[i]) {
			return "", false
		}
	}
	for i := idEnd + 1; i < len(s); i++ {
		if !isSecretByte(s[i]) {
			return "", false
		}
	}
	return s[len(Prefix):idEnd], true
}

func isIDByte(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isSecretByte(c byte) bool { return 'a' <= c && c <= 'z' || '2' <= c && c <= '7' }

// validID reports whether id has the form of a key id.
func validID(id string) bool {
	if len(id) < MinIDLen || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return false
		}
	}
	return true
}

// Generated is a freshly generated key. Key is shown to its owner once; ID and Hash
// go into configuration.
type Generated struct {
	Key  string // the full key, "pk_<id>_<secret>"
	ID   string // the key id
	Hash string // "sha512:<hex>" of Key
}

// Generate returns a new random key read from rnd (crypto/rand.Reader when nil).
func Generate(rnd io.Reader) (Generated, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	id, err := randomID(rnd)
	if err != nil {
		return Generated{}, err
	}
	var secret [SecretBytes]byte
	if _, err := io.ReadFull(rnd, secret[:]); err != nil {
		return Generated{}, fmt.Errorf("read random secret: %w", err)
	}
	key := Prefix + id + "_" + secretEncoding.EncodeToString(secret[:])
	return Generated{Key: key, ID: id, Hash: HashKey(key)}, nil
}

// randomID draws IDLen characters uniformly from idAlphabet by rejection sampling.
func randomID(rnd io.Reader) (string, error) {
	const limit = 256 - 256%len(idAlphabet) // largest multiple of 36 below 256
	var id [IDLen]byte
	var buf [2 * IDLen]byte
	n := 0
	for attempts := 0; n < IDLen; attempts++ {
		if attempts == 64 {
			return "", errors.New("random source is not uniform enough to draw a key id")
		}
		if _, err := io.ReadFull(rnd, buf[:]); err != nil {
			return "", fmt.Errorf("read random id: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && n < IDLen {
				id[n] = idAlphabet[int(b)%len(idAlphabet)]
				n++
			}
		}
	}
	return string(id[:]), nil
}

// HashKey returns the configuration form of key's digest: "sha512:<lowercase hex>".
func HashKey(key string) string {
	sum := sha512.Sum512([]byte(key))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// ParseHash decodes "sha512:<hex>" (128 hex digits) into a digest.
func ParseHash(s string) ([sha512.Size]byte, error) {
	var h [sha512.Size]byte
	rest, ok := strings.CutPrefix(s, hashPrefix)
	if !ok {
		return h, fmt.Errorf("key hash must start with %q", hashPrefix)
	}
	if len(rest) != 2*sha512.Size {
		return h, fmt.Errorf("key hash must have %d hex digits, got %d", 2*sha512.Size, len(rest))
	}
	if _, err := hex.Decode(h[:], []byte(rest)); err != nil {
		return h, fmt.Errorf("key hash: %w", err)
	}
	return h, nil
}
