package config

import (
	"net/url"
	"sort"
	"strings"
	"time"
)

// JWTProvider is one issuer of JWT bearer tokens (providers.jwt). Stages refer to it
// by name: {jwt: corp}.
type JWTProvider struct {
	// Name identifies the provider in stages, logs, readiness and the RFC 6750 realm.
	Name string `yaml:"name"`
	// Issuer, when set, must equal the token's "iss". Required with discovery, and for
	// every provider but the last of an any-of list (see JWTStage).
	Issuer    string   `yaml:"issuer"`
	Audiences []string `yaml:"audiences"`
	// Algorithms allowed; default: the asymmetric ones the keys support. "none" is
	// never allowed; HMAC algorithms must be listed.
	Algorithms      []string      `yaml:"algorithms"`
	ClockSkew       time.Duration `yaml:"clock_skew"`     // default 60s; 0s: none
	MaxTokenSize    int           `yaml:"max_token_size"` // bytes; default 8192
	AllowMissingExp bool          `yaml:"allow_missing_exp"`
	Claims          []ClaimRule   `yaml:"claims"`
	Keys            JWTKeys       `yaml:"keys"`
	Remote          JWTRemote     `yaml:"remote"`
	// Sources are where the token is read, in order; default: Authorization: Bearer.
	Sources      []TokenSource `yaml:"sources"`
	SubjectClaim string        `yaml:"subject_claim"` // default sub
	ScopeClaims  []string      `yaml:"scope_claims"`  // default scope, scp
	// ClaimHeaders maps a claim path to an upstream header name: relative to
	// identity.header_prefix, or absolute when written with a leading '/'.
	ClaimHeaders  map[string]string `yaml:"claim_headers"`
	PayloadHeader string            `yaml:"payload_header"` // relative or '/'-absolute like ClaimHeaders
	DenyJTIs      []string          `yaml:"deny_jtis"`
	DenySubjects  []string          `yaml:"deny_subjects"`
	CacheSize     int               `yaml:"cache_size"` // verified tokens kept; default 10000, 0 disables
	// Forward keeps the token's header in the request sent upstream (Envoy
	// jwt_authn's forward). Default false: the header is removed.
	Forward bool `yaml:"forward"`

	Pos Position `yaml:"-"`
}

// JWT provider defaults.
const (
	DefaultJWTClockSkew    = 60 * time.Second
	DefaultJWTMaxTokenSize = 8 << 10
	DefaultJWTCacheSize    = 10000
)

func (p *JWTProvider) setDefaults() {
	p.ClockSkew = DefaultJWTClockSkew
	p.MaxTokenSize = DefaultJWTMaxTokenSize
	p.SubjectClaim = "sub"
	p.CacheSize = DefaultJWTCacheSize
	p.Remote = JWTRemote{
		MinRefresh: time.Minute, MaxRefresh: time.Hour, UnknownKIDInterval: 30 * time.Second,
		Timeout: 5 * time.Second, MaxResponseBytes: 1 << 20, FirstFetchTimeout: 15 * time.Second,
	}
}

// jwtAlgorithms are the JOSE algorithms a provider may allow.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}

// Validate checks the name, algorithms, limits, header names and that the key source
// agrees with the issuer.
func (p *JWTProvider) Validate(v *Validator, path string) {
	checkName(v, joinPath(path, "name"), "provider name", p.Name)
	for i, a := range p.Algorithms {
		ap := indexPath(joinPath(path, "algorithms"), i)
		switch {
		case strings.EqualFold(a, "none"):
			v.Errorf(ap, `algorithm "none" can never be allowed: unsigned tokens prove nothing`)
		case !oneOf(a, jwtAlgorithms...):
			v.Errorf(ap, "unknown algorithm %q; expected one of: %s", a, strings.Join(jwtAlgorithms, ", "))
		}
	}
	if p.MaxTokenSize <= 0 {
		v.Errorf(joinPath(path, "max_token_size"), "must be positive")
	}
	if p.CacheSize < 0 {
		v.Errorf(joinPath(path, "cache_size"), "must not be negative (0 disables the cache)")
	}
	if p.SubjectClaim == "" {
		v.Errorf(joinPath(path, "subject_claim"), "must not be empty")
	}
	if p.Issuer != "" && !validIssuer(p.Issuer) {
		v.Errorf(joinPath(path, "issuer"), "invalid issuer %q: expected a URL or a non-empty name without spaces", p.Issuer)
	}
	if p.Keys.URL != "" {
		checkHTTPS(v, joinPath(joinPath(path, "keys"), "url"), p.Keys.URL, p.Remote.AllowHTTP, "remote.allow_http", "url is empty")
	}
	if p.Keys.Discovery {
		checkHTTPS(v, joinPath(path, "issuer"), p.Issuer, p.Remote.AllowHTTP, "remote.allow_http", "discovery needs the issuer's URL")
	}
	for _, claim := range sortedKeys(p.ClaimHeaders) {
		checkHeaderRef(v, joinPath(joinPath(path, "claim_headers"), claim), p.ClaimHeaders[claim])
	}
	if p.PayloadHeader != "" {
		checkHeaderRef(v, joinPath(path, "payload_header"), p.PayloadHeader)
	}
	if p.Remote.MinRefresh > p.Remote.MaxRefresh {
		v.Errorf(joinPath(joinPath(path, "remote"), "min_refresh"), "min_refresh %s exceeds max_refresh %s", p.Remote.MinRefresh, p.Remote.MaxRefresh)
	}
}

func validIssuer(s string) bool { return s != "" && !strings.ContainsAny(s, " \t\r\n") }

// checkHeaderRef checks a claim header name: a header name, optionally after '/'.
func checkHeaderRef(v *Validator, path, name string) {
	if !isToken(strings.TrimPrefix(name, "/")) {
		v.Errorf(path, "invalid header name %q: a header name relative to identity.header_prefix, or /name for an absolute one", name)
	}
}

// ClaimHeader returns the lowercase header name of a claim_headers or payload_header
// reference: written with a leading '/' it is absolute, otherwise it takes the
// identity prefix ("claim-tenant" -> "x-portcullis-claim-tenant").
func ClaimHeader(ref, prefix string) string {
	if name, ok := strings.CutPrefix(ref, "/"); ok {
		return strings.ToLower(name)
	}
	return prefix + strings.ToLower(ref)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkHTTPS requires an absolute https URL, or http when allowHTTP (set by the key
// allowKey).
func checkHTTPS(v *Validator, path, raw string, allowHTTP bool, allowKey, what string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.Errorf(path, "%s", what)
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.Errorf(path, "invalid URL %q: expected https://host/...", redactURL(raw))
	case u.Scheme == "http" && !allowHTTP:
		v.Errorf(path, "plain http URL %q: use https, or set %s for development", redactURL(raw), allowKey)
	case u.User != nil:
		v.Errorf(path, "credentials in the URL are not allowed")
	}
}

// ClaimRule requires a claim and optionally constrains it: at most one of Equals,
// OneOf and Contains. With none, the claim must be present.
type ClaimRule struct {
	Path     string   `yaml:"path"`     // dotted path: tenant.id
	Equals   string   `yaml:"equals"`   // a scalar equal to this text
	OneOf    []string `yaml:"one_of"`   // a scalar equal to one of these
	Contains string   `yaml:"contains"` // an array holding it, or a space-separated word
}

// Validate requires a path and at most one matcher.
func (c *ClaimRule) Validate(v *Validator, path string) {
	if c.Path == "" {
		v.Errorf(joinPath(path, "path"), "path is required")
	}
	n := 0
	for _, k := range []string{"equals", "one_of", "contains"} {
		if v.Has(joinPath(path, k)) {
			n++
		}
	}
	if n > 1 {
		v.Errorf(path, "a claim rule has at most one of equals, one_of and contains")
	}
	if v.Has(joinPath(path, "one_of")) && len(c.OneOf) == 0 {
		v.Errorf(joinPath(path, "one_of"), "one_of needs at least one value")
	}
}

// JWTKeys is where a provider's verification keys come from: exactly one of JWKS,
// File, URL and Discovery.
type JWTKeys struct {
	JWKS      string `yaml:"jwks"`      // an inline JWK Set (JSON)
	File      string `yaml:"file"`      // a JWK Set file, relative to the document
	URL       string `yaml:"url"`       // a remote JWK Set, fetched in the background
	Discovery bool   `yaml:"discovery"` // <issuer>/.well-known/openid-configuration
}

// Validate requires exactly one source (the provider checks the URL).
func (k *JWTKeys) Validate(v *Validator, path string) {
	n := 0
	for _, set := range []bool{k.JWKS != "", k.File != "", k.URL != "", k.Discovery} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.Errorf(path, "keys need exactly one of jwks, file, url and discovery (%d given)", n)
	}
}

// Remote reports whether the keys are fetched over the network.
func (k *JWTKeys) Remote() bool { return k.URL != "" || k.Discovery }

// JWTRemote tunes the background fetching of url and discovery keys.
type JWTRemote struct {
	MinRefresh         time.Duration `yaml:"min_refresh"`          // default 1m
	MaxRefresh         time.Duration `yaml:"max_refresh"`          // default 1h
	UnknownKIDInterval time.Duration `yaml:"unknown_kid_interval"` // default 30s
	Timeout            time.Duration `yaml:"timeout"`              // default 5s
	MaxResponseBytes   int64         `yaml:"max_response_bytes"`   // default 1 MiB
	WaitFirstFetch     bool          `yaml:"wait_first_fetch"`
	FirstFetchTimeout  time.Duration `yaml:"first_fetch_timeout"` // default 15s
	CAFile             string        `yaml:"ca_file"`             // PEM roots, relative to the document
	AllowHTTP          bool          `yaml:"allow_http"`          // development only
}

// Validate checks that every duration and limit is positive.
func (r *JWTRemote) Validate(v *Validator, path string) {
	positive(v, path, "min_refresh", r.MinRefresh)
	positive(v, path, "max_refresh", r.MaxRefresh)
	positive(v, path, "unknown_kid_interval", r.UnknownKIDInterval)
	positive(v, path, "timeout", r.Timeout)
	positive(v, path, "max_response_bytes", r.MaxResponseBytes)
	positive(v, path, "first_fetch_timeout", r.FirstFetchTimeout)
}

// TokenSource is one place a bearer token is read: exactly one of Bearer, Header
// (with an optional value Prefix), Cookie and Query.
type TokenSource struct {
	Bearer bool   `yaml:"bearer"` // Authorization: Bearer <token>
	Header string `yaml:"header"` // a request header
	Prefix string `yaml:"prefix"` // with header: a value prefix to remove, e.g. "Token "
	Cookie string `yaml:"cookie"` // a cookie
	Query  string `yaml:"query"`  // a query parameter (WebSocket handshakes); removed upstream
}

// Validate checks that exactly one place is given.
func (s *TokenSource) Validate(v *Validator, path string) {
	n := 0
	if s.Bearer || v.Has(joinPath(path, "bearer")) {
		n++
		if !s.Bearer {
			v.Errorf(joinPath(path, "bearer"), "bearer: false is not a source; remove the entry")
		}
	}
	if s.Header != "" || v.Has(joinPath(path, "header")) {
		n++
		if !isToken(s.Header) {
			v.Errorf(joinPath(path, "header"), "invalid header name %q", s.Header)
		}
	}
	if s.Cookie != "" || v.Has(joinPath(path, "cookie")) {
		n++
		if !isToken(s.Cookie) {
			v.Errorf(joinPath(path, "cookie"), "invalid cookie name %q", s.Cookie)
		}
	}
	if s.Query != "" || v.Has(joinPath(path, "query")) {
		n++
		if s.Query == "" {
			v.Errorf(joinPath(path, "query"), "query parameter name is empty")
		}
	}
	if n != 1 {
		v.Errorf(path, "a source is exactly one of bearer, header, cookie and query")
	}
	if s.Prefix != "" && s.Header == "" {
		v.Errorf(joinPath(path, "prefix"), "prefix applies to a header source only")
	}
}

// JWTProviders is the list of JWT providers; names are unique among JWT and
// introspection providers.
type JWTProviders []JWTProvider

// Validate reports duplicate names.
func (ps JWTProviders) Validate(v *Validator, path string) {
	first := map[string]string{}
	for i, p := range v.Document().Providers.Introspection {
		if _, dup := first[p.Name]; !dup {
			first[p.Name] = indexPath("providers.introspection", i)
		}
	}
	for i, p := range ps {
		if p.Name == "" {
			continue
		}
		if at, dup := first[p.Name]; dup {
			v.Errorf(joinPath(indexPath(path, i), "name"), "duplicate provider name %q (first is %s)", p.Name, at)
			continue
		}
		first[p.Name] = indexPath(path, i)
	}
}

// ByName returns the provider named name.
func (ps JWTProviders) ByName(name string) (*JWTProvider, bool) {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], true
		}
	}
	return nil, false
}
