package config

import (
	"strings"
	"time"
)

// HMAC signature schemes (HMACProvider.Scheme).
const (
	HMACSchemeRFC9421 = "rfc9421" // HTTP Message Signatures (default)
	HMACSchemeGitHub  = "github"  // X-Hub-Signature-256
	HMACSchemeStripe  = "stripe"  // Stripe-Signature
	HMACSchemeSlack   = "slack"   // X-Slack-Signature v0
	HMACSchemeGeneric = "generic" // X-Signature over timestamp, method, target and body
)

// HMAC signature algorithms (HMACKey.Algorithm), named as in RFC 9421.
const (
	HMACAlgHMACSHA256      = "hmac-sha256"
	HMACAlgEd25519         = "ed25519"
	HMACAlgECDSAP256SHA256 = "ecdsa-p256-sha256"
	HMACAlgRSAPSSSHA512    = "rsa-pss-sha512"
	HMACAlgRSAV15SHA256    = "rsa-v1_5-sha256"
)

// When Content-Digest must be covered (HMACPolicy.DigestRequired).
const (
	DigestIfBody   = "if_body"  // whenever the request has a body (default)
	DigestAlways   = "always"   // on every request
	DigestOptional = "optional" // never required; checked when covered
)

var (
	hmacSchemes    = []string{HMACSchemeRFC9421, HMACSchemeGitHub, HMACSchemeStripe, HMACSchemeSlack, HMACSchemeGeneric}
	hmacAlgorithms = []string{HMACAlgHMACSHA256, HMACAlgEd25519, HMACAlgECDSAP256SHA256, HMACAlgRSAPSSSHA512, HMACAlgRSAV15SHA256}
	digestAlgs     = []string{"sha-256", "sha-512"}
)

// DefaultHMACBodyLimit is the body bytes read for verification when body_limit is not
// set (1 MiB).
const DefaultHMACBodyLimit = 1 << 20

// HMACProvider verifies request signatures of one scheme for a set of clients. The
// hmac stage names it. Secrets are references, resolved when the document is compiled.
type HMACProvider struct {
	// Name is how stages refer to the provider (unique among hmac providers); it also
	// namespaces the replay set in a shared store.
	Name string `yaml:"name"`
	// Scheme is one of rfc9421 (default), github, stripe, slack, generic.
	Scheme  string       `yaml:"scheme"`
	Clients []HMACClient `yaml:"clients"`
	// Policy is what an RFC 9421 signature must satisfy (rfc9421 only).
	Policy HMACPolicy `yaml:"policy"`
	// Header and TimestampHeader override a webhook scheme's header names.
	Header          string `yaml:"header"`
	TimestampHeader string `yaml:"timestamp_header"`
	// Tolerance is the largest accepted clock difference of a webhook timestamp
	// (stripe, slack, generic); 0 means 5m.
	Tolerance time.Duration `yaml:"tolerance"`
	// BodyLimit is how many body bytes are read to verify; a longer body is denied.
	BodyLimit int64 `yaml:"body_limit"`
	// Replay rejects a signature that was already accepted (default true).
	Replay bool `yaml:"replay"`
	// ReplayWindow (github only) rejects a byte-identical delivery seen within it:
	// GitHub signatures carry no timestamp, so this is opt-in.
	ReplayWindow time.Duration `yaml:"replay_window"`
}

func (p *HMACProvider) setDefaults() {
	p.Scheme, p.Replay, p.BodyLimit = HMACSchemeRFC9421, true, DefaultHMACBodyLimit
	p.Policy.DigestRequired = DigestIfBody
}

// HMACClient is one caller: the identity its keys authenticate as.
type HMACClient struct {
	Subject string    `yaml:"subject"`
	Scopes  []string  `yaml:"scopes"`
	Keys    []HMACKey `yaml:"keys"`
}

// HMACKey is one key of a client. Several keys of a client may share an id, so a secret
// rotates without downtime; ids are unique across the provider's clients.
type HMACKey struct {
	// ID is the RFC 9421 keyid and the key id reported upstream.
	ID string `yaml:"id"`
	// Secret is the shared HMAC key (raw bytes, at least 16), for hmac-sha256.
	Secret Secret `yaml:"secret"`
	// Algorithm is the RFC 9421 algorithm (default hmac-sha256).
	Algorithm string `yaml:"algorithm"`
	// PublicKey is a reference to a PEM public key, for the asymmetric algorithms.
	PublicKey Secret `yaml:"public_key"`
}

func (k *HMACKey) setDefaults() { k.Algorithm = HMACAlgHMACSHA256 }

// HMACPolicy is what an RFC 9421 signature must cover and carry beyond being valid.
type HMACPolicy struct {
	// RequiredComponents must all be covered (default @method and @target-uri); an
	// empty list requires none.
	RequiredComponents []string `yaml:"required_components"`
	// DigestRequired is if_body (default), always or optional.
	DigestRequired string `yaml:"digest_required"`
	// DigestAlgorithms are the accepted Content-Digest algorithms (default both).
	DigestAlgorithms []string `yaml:"digest_algorithms"`
	// Algorithms are the accepted signature algorithms (default: those of the keys).
	Algorithms []string `yaml:"algorithms"`
	// MaxAge is the oldest created accepted (0: 5m); ClockSkew is tolerated on
	// created and expires (0: 30s).
	MaxAge    time.Duration `yaml:"max_age"`
	ClockSkew time.Duration `yaml:"clock_skew"`
	// CreatedOptional accepts signatures without created.
	CreatedOptional bool `yaml:"created_optional"`
	RequireExpires  bool `yaml:"require_expires"`
	RequireNonce    bool `yaml:"require_nonce"`
	// Tag, when set, selects signatures with this tag; Label, when set, the
	// signature with this label.
	Tag   string `yaml:"tag"`
	Label string `yaml:"label"`
}

// HMACProviders is the list of hmac providers; names are unique.
type HMACProviders []HMACProvider

// Validate reports duplicate names.
func (ps HMACProviders) Validate(v *Validator, path string) {
	checkUnique(v, path, "name", "hmac provider", ps, func(p *HMACProvider) string { return p.Name })
}

// ByName returns the provider with the given name and its index.
func (ps HMACProviders) ByName(name string) (*HMACProvider, int, bool) {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], i, true
		}
	}
	return nil, -1, false
}

func (ps HMACProviders) names() string {
	names := make([]string, len(ps))
	for i := range ps {
		names[i] = ps[i].Name
	}
	return strings.Join(names, ", ")
}

// Validate checks the scheme, that each option suits it, the key ids and the limits.
func (p *HMACProvider) Validate(v *Validator, path string) {
	checkName(v, joinPath(path, "name"), "provider name", p.Name)
	if !oneOf(p.Scheme, hmacSchemes...) {
		v.Errorf(joinPath(path, "scheme"), "unknown scheme %q: expected %s", p.Scheme, strings.Join(hmacSchemes, ", "))
		return
	}
	rfc := p.Scheme == HMACSchemeRFC9421
	for _, o := range []struct {
		key   string
		valid bool
		which string
	}{
		{"policy", rfc, "the rfc9421 scheme"},
		{"header", !rfc, "the github, stripe, slack and generic schemes"},
		{"timestamp_header", oneOf(p.Scheme, HMACSchemeSlack, HMACSchemeGeneric), "the slack and generic schemes"},
		{"tolerance", oneOf(p.Scheme, HMACSchemeStripe, HMACSchemeSlack, HMACSchemeGeneric), "the stripe, slack and generic schemes"},
		{"replay_window", p.Scheme == HMACSchemeGitHub, "the github scheme"},
	} {
		if !o.valid && v.Has(joinPath(path, o.key)) {
			v.Errorf(joinPath(path, o.key), "%s applies only to %s, not to %s", o.key, o.which, p.Scheme)
		}
	}
	for _, h := range []string{"header", "timestamp_header"} {
		if name := p.headerField(h); v.Has(joinPath(path, h)) && !isToken(name) {
			v.Errorf(joinPath(path, h), "invalid header name %q", name)
		}
	}
	if p.BodyLimit <= 0 {
		v.Errorf(joinPath(path, "body_limit"), "must be positive")
	} else if limit := v.Document().Server.MaxBodyBytes; limit > 0 && p.BodyLimit > limit {
		v.Errorf(joinPath(path, "body_limit"), "%d exceeds server.max_body_bytes (%d): larger bodies are refused before verification", p.BodyLimit, limit)
	}
	if len(p.Clients) == 0 {
		v.Errorf(joinPath(path, "clients"), "at least one client is required")
	}
	p.checkKeys(v, path, rfc)
}

func (p *HMACProvider) headerField(key string) string {
	if key == "header" {
		return p.Header
	}
	return p.TimestampHeader
}

// checkKeys checks each key against the scheme, and that no key id belongs to two
// clients (an id names one identity).
func (p *HMACProvider) checkKeys(v *Validator, path string, rfc bool) {
	owner := map[string]int{}
	for i := range p.Clients {
		c := &p.Clients[i]
		cp := indexPath(joinPath(path, "clients"), i)
		for j := range c.Keys {
			k := &c.Keys[j]
			kp := indexPath(joinPath(cp, "keys"), j)
			k.check(v, kp, rfc)
			if k.ID == "" {
				continue
			}
			if o, ok := owner[k.ID]; ok && o != i {
				v.Errorf(joinPath(kp, "id"), "key id %q also belongs to %s", k.ID, indexPath(joinPath(path, "clients"), o))
				continue
			}
			owner[k.ID] = i
		}
	}
}

// check validates one key: its id, and a secret or a public key as its algorithm needs.
func (k *HMACKey) check(v *Validator, path string, rfc bool) {
	if !validHMACKeyID(k.ID) {
		v.Errorf(joinPath(path, "id"), "invalid key id %q: 1 to 128 printable ASCII characters without spaces, quotes or backslashes", k.ID)
	}
	alg := joinPath(path, "algorithm")
	switch {
	case !oneOf(k.Algorithm, hmacAlgorithms...):
		v.Errorf(alg, "unknown algorithm %q: expected %s", k.Algorithm, strings.Join(hmacAlgorithms, ", "))
		return
	case !rfc && k.Algorithm != HMACAlgHMACSHA256:
		v.Errorf(alg, "webhook schemes take hmac-sha256 only")
		return
	}
	if k.Algorithm == HMACAlgHMACSHA256 {
		if k.Secret.IsZero() {
			v.Errorf(joinPath(path, "secret"), "secret is required for hmac-sha256 (env:NAME or file:PATH)")
		}
		if !k.PublicKey.IsZero() {
			v.Errorf(joinPath(path, "public_key"), "hmac-sha256 takes a secret, not a public key")
		}
		return
	}
	if k.PublicKey.IsZero() {
		v.Errorf(joinPath(path, "public_key"), "public_key is required for %s (file:PATH of a PEM public key)", k.Algorithm)
	}
	if !k.Secret.IsZero() {
		v.Errorf(joinPath(path, "secret"), "%s verifies with a public key; a shared secret is not used", k.Algorithm)
	}
}

// validHMACKeyID: the id travels as an RFC 8941 string (keyid) and as a header value.
func validHMACKeyID(id string) bool { return len(id) <= 128 && isScope(id) }

// Validate checks subject, scopes and that the client has keys.
func (c *HMACClient) Validate(v *Validator, path string) {
	if c.Subject == "" {
		v.Errorf(joinPath(path, "subject"), "subject is required")
	}
	checkScopes(v, joinPath(path, "scopes"), c.Scopes)
	if len(c.Keys) == 0 {
		v.Errorf(joinPath(path, "keys"), "at least one key is required")
	}
}

// Validate checks the enumerations and the component identifiers' basic shape (the
// compiler parses them fully).
func (p *HMACPolicy) Validate(v *Validator, path string) {
	if !oneOf(p.DigestRequired, DigestIfBody, DigestAlways, DigestOptional) {
		v.Errorf(joinPath(path, "digest_required"), "invalid digest_required %q: expected if_body, always or optional", p.DigestRequired)
	}
	for i, a := range p.DigestAlgorithms {
		if !oneOf(a, digestAlgs...) {
			v.Errorf(indexPath(joinPath(path, "digest_algorithms"), i), "unknown digest algorithm %q: expected sha-256 or sha-512", a)
		}
	}
	for i, a := range p.Algorithms {
		if !oneOf(a, hmacAlgorithms...) {
			v.Errorf(indexPath(joinPath(path, "algorithms"), i), "unknown algorithm %q: expected %s", a, strings.Join(hmacAlgorithms, ", "))
		}
	}
	for i, c := range p.RequiredComponents {
		if strings.TrimSpace(c) == "" {
			v.Errorf(indexPath(joinPath(path, "required_components"), i), "component identifier is empty")
		}
	}
	if p.Label != "" && !isSFKey(p.Label) {
		v.Errorf(joinPath(path, "label"), "invalid label %q: a lowercase letter or '*', then lowercase letters, digits, '_', '-', '.' or '*'", p.Label)
	}
}

// isSFKey reports whether s is an RFC 8941 dictionary key, as a signature label is.
func isSFKey(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("_-.*", c) >= 0) {
			return false
		}
	}
	return true
}
