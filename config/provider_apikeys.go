package config

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// APIKey is one API key: only a hash of the key is configured, never the key.
type APIKey struct {
	// ID is the public key id ([a-z0-9]{4,32}, unique); it is the key's prefix on the
	// wire and is logged and sent upstream as the key id.
	ID      string `yaml:"id"`
	Subject string `yaml:"subject"` // the identity's subject; required
	// Hash is the hash of the whole key; required.
	Hash   KeyHash  `yaml:"hash"`
	Scopes []string `yaml:"scopes"`
	// Expires is when the key stops working; zero means never.
	Expires time.Time `yaml:"expires"`
	// AllowedIPs, when not empty, restricts the client addresses that may use the key.
	AllowedIPs []netip.Prefix `yaml:"allowed_ips"`
	Disabled   bool           `yaml:"disabled"`

	Pos Position `yaml:"-"`
}

// Validate checks the id, subject, hash and scopes.
func (k *APIKey) Validate(v *Validator, path string) {
	if !validKeyID(k.ID) {
		v.Errorf(joinPath(path, "id"), "invalid key id %q: 4 to 32 lowercase letters and digits", k.ID)
	}
	if k.Subject == "" {
		v.Errorf(joinPath(path, "subject"), "subject is required")
	}
	if k.Hash.Algorithm == "" {
		v.Errorf(joinPath(path, "hash"), "hash is required")
	}
	checkScopes(v, joinPath(path, "scopes"), k.Scopes)
}

func validKeyID(id string) bool {
	if len(id) < 4 || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// APIKeys is the list of configured API keys; ids are unique.
type APIKeys []APIKey

// Validate reports duplicate ids.
func (ks APIKeys) Validate(v *Validator, path string) {
	checkUnique(v, path, "id", "key id", ks, func(k *APIKey) string { return k.ID })
}

// ByID returns the key with the given id.
func (ks APIKeys) ByID(id string) (*APIKey, bool) {
	for i := range ks {
		if ks[i].ID == id {
			return &ks[i], true
		}
	}
	return nil, false
}

// HashSHA512 is the only key hash algorithm accepted for now.
const HashSHA512 = "sha512"

// KeyHash is a credential hash written "ALGORITHM:HEX", e.g. "sha512:<128 hex digits>".
type KeyHash struct {
	Algorithm string // "sha512"
	Sum       []byte // 64 bytes for sha512
}

// String returns the hash in its document form.
func (h KeyHash) String() string {
	if h.Algorithm == "" {
		return ""
	}
	return h.Algorithm + ":" + hex.EncodeToString(h.Sum)
}

func (h *KeyHash) decodeYAML(d *decoder, path string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	alg, digits, ok := strings.Cut(n.Value, ":")
	if n.Kind != yaml.ScalarNode || !ok {
		d.errorf(n, path, "expected sha512:<128 hex digits>, got %s", describe(n))
		return
	}
	if alg != HashSHA512 {
		d.errorf(n, path, "unsupported hash algorithm %q: only sha512 is accepted", alg)
		return
	}
	sum, err := hex.DecodeString(digits)
	if err != nil || len(sum) != 64 {
		d.errorf(n, path, "a sha512 hash is 128 hex digits")
		return
	}
	h.Algorithm, h.Sum = alg, sum
}
