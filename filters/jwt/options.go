package jwt

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New to zero-valued options.
const (
	DefaultClockSkew          = 60 * time.Second
	DefaultMaxTokenSize       = 8 << 10
	DefaultCacheSize          = 10000
	DefaultSubjectClaim       = "sub"
	DefaultMinRefresh         = time.Minute
	DefaultMaxRefresh         = time.Hour
	DefaultRefresh            = 10 * time.Minute // when the JWKS response has no max-age
	DefaultUnknownKIDInterval = 30 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxResponseBytes   = 1 << 20
	DefaultFirstFetchTimeout  = 15 * time.Second
)

// DefaultScopeClaims are read for scopes when Options.ScopeClaims is empty.
var DefaultScopeClaims = []string{"scope", "scp"}

// Options configures one JWT provider; each provider is one Authenticator.
type Options struct {
	// Name identifies the provider (stage names, logs, metrics). Required.
	Name string
	// Issuer, when set, must equal the token's "iss" exactly. Required with Discovery.
	Issuer string
	// YieldOtherIssuers makes a token whose (unverified) "iss" is not Issuer count as
	// "no credentials" instead of a 401, so the next provider of an any-of requirement
	// sharing the same token source can verify it. Set it on every provider of such a
	// list except the last, which then rejects tokens of unknown issuers (even on
	// routes that allow anonymous requests). Requires Issuer.
	YieldOtherIssuers bool
	// Audiences, when set, must share at least one value with the token's "aud".
	Audiences []string
	// Algorithms allowed, by JOSE name. Default: every asymmetric algorithm (RS*, PS*,
	// ES*, EdDSA), further restricted by what each key fits. HMAC algorithms must be
	// listed explicitly; "none" is an error.
	Algorithms []string
	// ClockSkew tolerated on exp, nbf and iat. Default 60s; negative means none.
	ClockSkew time.Duration
	// MaxTokenSize in bytes; longer tokens are rejected before any decoding. Default 8 KiB.
	MaxTokenSize int
	// AllowMissingExp accepts tokens without "exp" (default: rejected).
	AllowMissingExp bool
	// Claims are further required claims, each with an optional matcher.
	Claims []ClaimRule

	// Keys says where the verification keys come from. Exactly one source is required.
	Keys KeysOptions

	// Sources lists where tokens are read, in order; the first that carries one wins.
	// Default: the Authorization header with the Bearer scheme.
	Sources []Source

	// SubjectClaim is the claim (dotted path) holding the subject. Default "sub".
	SubjectClaim string
	// ScopeClaims are claims (dotted paths) holding scopes: a space-separated string or
	// an array of strings (scp, roles, groups...). Default: scope, scp.
	ScopeClaims []string
	// ClaimHeaders copy verified claims into upstream headers (Identity.Headers).
	ClaimHeaders []ClaimHeader
	// PayloadHeader, when set, is a lowercase header name that receives the verified
	// payload, base64url-encoded.
	PayloadHeader string
	// Realm is the RFC 6750 realm in WWW-Authenticate challenges. Default: Name.
	Realm string

	// DenyJTIs and DenySubjects revoke tokens by "jti" and by subject.
	DenyJTIs     []string
	DenySubjects []string
	// Revocation, when set, is asked on every request (cache hits included). Its
	// errors are technical failures: the stage's on_error decides.
	Revocation RevocationChecker

	// CacheSize bounds the cache of verified tokens. Default 10000; negative disables.
	CacheSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// ClaimRule requires a claim and optionally constrains its value. With no matcher set,
// the claim must be present. Scalars (strings, numbers, booleans) are compared in
// their text form: numbers without a fraction print as integers.
type ClaimRule struct {
	// Claim is a dotted path into the claims ("tenant.id"); a key containing dots is
	// matched whole first.
	Claim string
	// Equals: the claim is a scalar equal to this text.
	Equals string
	// OneOf: the claim is a scalar equal to one of these.
	OneOf []string
	// Contains: the claim is an array holding this text, or a space-separated string
	// holding this word.
	Contains string
}

// ClaimHeader copies one claim to one upstream header. Scalars are written as text,
// arrays of scalars joined with ","; objects and values with control characters are
// skipped.
type ClaimHeader struct {
	Claim  string // dotted path
	Header string // full header name; lowercased by New
}

// SourceKind says where a token is read from.
type SourceKind uint8

// The token sources.
const (
	// FromBearer reads "Authorization: Bearer <token>" (RFC 6750 §2.1).
	FromBearer SourceKind = iota
	// FromHeader reads the header Name, with an optional value Prefix removed.
	FromHeader
	// FromCookie reads the cookie Name.
	FromCookie
	// FromQuery reads the query parameter Name (WebSocket handshakes). The lead strips
	// it upstream through engine.Pipeline.StripQuery (see Authenticator.QueryParams).
	FromQuery
)

// Source is one place a token may be carried.
type Source struct {
	Kind   SourceKind
	Name   string // header, cookie or query parameter name; unused for FromBearer
	Prefix string // FromHeader only: value prefix to remove, e.g. "Token "
}

// KeysOptions is where verification keys come from: exactly one of JWKS, File, URL or
// Discovery.
type KeysOptions struct {
	// JWKS is an inline JWK Set (or a single JWK).
	JWKS []byte
	// File is a JWK Set file, read once by New.
	File string
	// URL is a remote JWK Set, fetched in the background (https unless AllowHTTP).
	URL string
	// Discovery fetches "<Issuer>/.well-known/openid-configuration" and then its jwks_uri.
	Discovery bool
	// Remote tunes fetching for URL and Discovery.
	Remote RemoteOptions
}

// RemoteOptions tunes background key fetching.
type RemoteOptions struct {
	// MinRefresh and MaxRefresh bound the refresh interval taken from Cache-Control
	// max-age (DefaultRefresh without one). Defaults 1m and 1h. After a failure the
	// fetch is retried with backoff from 1s, capped at MinRefresh.
	MinRefresh, MaxRefresh time.Duration
	// UnknownKIDInterval rate-limits early refreshes caused by tokens with an unknown
	// kid: at most one per interval, however many kids are tried. Default 30s.
	UnknownKIDInterval time.Duration
	// Timeout bounds each HTTP request. Default 5s.
	Timeout time.Duration
	// MaxResponseBytes caps a response body. Default 1 MiB.
	MaxResponseBytes int64
	// WaitFirstFetch makes Start wait (up to FirstFetchTimeout, default 15s) for the
	// first fetch, so the provider is not ready without keys.
	WaitFirstFetch    bool
	FirstFetchTimeout time.Duration
	// TLS is the client TLS configuration (cloned). Nil: system roots, TLS 1.2+.
	TLS *tls.Config
	// CAPEM, when set, replaces the trusted roots with these PEM certificates.
	CAPEM []byte
	// AllowHTTP permits plain http URLs (development only).
	AllowHTTP bool
	// OnFetch observes every fetch attempt (metrics, logs). It must not block.
	OnFetch func(FetchEvent)
}

// FetchEvent describes one key fetch attempt.
type FetchEvent struct {
	Provider string
	URL      string
	Keys     int           // keys in the set now in use
	Err      error         // nil on success; the last good set stays in use on error
	Took     time.Duration // wall time of the attempt
	Next     time.Duration // until the next scheduled fetch
}

// withDefaults returns o with defaults applied, or an error for invalid settings.
func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		return o, errors.New("jwt provider: name is required")
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	} else if o.ClockSkew < 0 {
		o.ClockSkew = 0
	}
	if o.MaxTokenSize <= 0 {
		o.MaxTokenSize = DefaultMaxTokenSize
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.SubjectClaim == "" {
		o.SubjectClaim = DefaultSubjectClaim
	}
	if len(o.ScopeClaims) == 0 {
		o.ScopeClaims = DefaultScopeClaims
	}
	if len(o.Sources) == 0 {
		o.Sources = []Source{{Kind: FromBearer}}
	}
	if o.Realm == "" {
		o.Realm = o.Name
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.PayloadHeader = strings.ToLower(o.PayloadHeader)
	o.Keys.Remote = o.Keys.Remote.withDefaults()
	return o, o.validate()
}

func (o *Options) validate() error {
	var errs []error
	n := 0
	for _, set := range []bool{len(o.Keys.JWKS) > 0, o.Keys.File != "", o.Keys.URL != "", o.Keys.Discovery} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, errors.New("exactly one key source (jwks, file, url, discovery) is required"))
	}
	if (o.Keys.Discovery || o.YieldOtherIssuers) && o.Issuer == "" {
		errs = append(errs, errors.New("discovery and yield_other_issuers require an issuer"))
	}
	for i, s := range o.Sources {
		if s.Kind > FromQuery || (s.Kind != FromBearer && s.Name == "") {
			errs = append(errs, fmt.Errorf("source %d: a name is required", i))
		}
	}
	for i := range o.ClaimHeaders {
		h := &o.ClaimHeaders[i]
		h.Header = strings.ToLower(h.Header)
		if h.Claim == "" || !validHeaderName(h.Header) {
			errs = append(errs, fmt.Errorf("claim header %d: claim and a valid header name are required", i))
		}
	}
	if o.PayloadHeader != "" && !validHeaderName(o.PayloadHeader) {
		errs = append(errs, fmt.Errorf("payload header %q is not a valid header name", o.PayloadHeader))
	}
	for i, c := range o.Claims {
		if c.Claim == "" {
			errs = append(errs, fmt.Errorf("claim rule %d: claim is required", i))
		}
	}
	if o.Keys.URL != "" {
		errs = append(errs, checkURL(o.Keys.URL, o.Keys.Remote.AllowHTTP))
	}
	if o.Keys.Discovery {
		errs = append(errs, checkURL(o.Issuer, o.Keys.Remote.AllowHTTP))
	}
	if r := o.Keys.Remote; r.MinRefresh > r.MaxRefresh {
		errs = append(errs, errors.New("remote: min refresh exceeds max refresh"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("jwt provider %q: %w", o.Name, err)
	}
	return nil
}

func (r RemoteOptions) withDefaults() RemoteOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&r.MinRefresh, DefaultMinRefresh)
	def(&r.MaxRefresh, DefaultMaxRefresh)
	def(&r.UnknownKIDInterval, DefaultUnknownKIDInterval)
	def(&r.Timeout, DefaultFetchTimeout)
	def(&r.FirstFetchTimeout, DefaultFirstFetchTimeout)
	if r.MaxResponseBytes <= 0 {
		r.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return r
}

// checkURL requires an absolute https URL (or http when allowed).
func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Host == "" || (u.Scheme != "https" && !(allowHTTP && u.Scheme == "http")) {
		return fmt.Errorf("url %q: an absolute https URL is required", raw)
	}
	return nil
}

// validHeaderName reports whether s is a non-empty RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
