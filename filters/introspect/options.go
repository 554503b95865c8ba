// Package introspect authenticates opaque OAuth 2.0 bearer tokens with an RFC 7662
// token introspection endpoint. Results are cached by the SHA-256 of the token:
// positive ones until the token's exp or CacheTTL, whichever comes first, negative
// ones for NegativeTTL. Endpoint failures are technical errors (the stage's on_error
// decides); they are never cached and never count as a pass.
package introspect

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
	DefaultCacheTTL         = 5 * time.Minute
	DefaultNegativeTTL      = 10 * time.Second
	DefaultCacheSize        = 10000
	DefaultTimeout          = 3 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultMaxTokenSize     = 8 << 10
)

// Method is the Identity.Method of introspected identities.
const Method = "introspection"

// Options configures one introspection provider.
type Options struct {
	// Name identifies the provider (stage names, logs). Required.
	Name string
	// Endpoint is the introspection endpoint (https unless AllowHTTP). Required.
	Endpoint string
	// ClientID and ClientSecret authenticate Portcullis to the endpoint (the secret is
	// resolved from its reference by the caller and never logged).
	ClientID     string
	ClientSecret []byte
	// PostCredentials sends the client credentials in the form body
	// (client_secret_post) instead of HTTP Basic (client_secret_basic, the default).
	PostCredentials bool
	// TokenTypeHint is sent as token_type_hint when set (e.g. "access_token").
	TokenTypeHint string

	// Issuer, when set, must equal the response's "iss".
	Issuer string
	// Audiences, when set, must share a value with the response's "aud".
	Audiences []string
	// RequiredScopes must all be in the response's "scope" (else 403 insufficient_scope).
	RequiredScopes []string
	// Header, when set, names the header carrying the token as is; default is
	// "Authorization: Bearer <token>".
	Header string
	// MaxTokenSize in bytes. Default 8 KiB.
	MaxTokenSize int
	// Realm is the RFC 6750 realm in challenges. Default: Name.
	Realm string

	// CacheTTL bounds how long an active result is reused (also bounded by exp).
	// Default 5m. NegativeTTL is how long an inactive result is reused. Default 10s.
	// Negative values disable the respective caching.
	CacheTTL, NegativeTTL time.Duration
	// CacheSize bounds the cache. Default 10000; negative disables it.
	CacheSize int

	// Timeout bounds each endpoint call. Default 3s.
	Timeout time.Duration
	// MaxResponseBytes caps the endpoint's response. Default 64 KiB.
	MaxResponseBytes int64
	// TLS is the client TLS configuration (cloned). Nil: system roots, TLS 1.2+.
	TLS *tls.Config
	// CAPEM, when set, replaces the trusted roots with these PEM certificates.
	CAPEM []byte
	// AllowHTTP permits a plain http endpoint (development only).
	AllowHTTP bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(o.AllowHTTP && u.Scheme == "http")) {
		errs = append(errs, fmt.Errorf("endpoint %q: an absolute https URL is required", o.Endpoint))
	}
	if o.ClientID == "" && len(o.ClientSecret) > 0 {
		errs = append(errs, errors.New("a client secret needs a client id"))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("introspection provider %q: %w", o.Name, err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.CacheTTL, DefaultCacheTTL)
	def(&o.NegativeTTL, DefaultNegativeTTL)
	def(&o.Timeout, DefaultTimeout)
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.MaxTokenSize <= 0 {
		o.MaxTokenSize = DefaultMaxTokenSize
	}
	if o.Realm == "" {
		o.Realm = o.Name
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Header = strings.TrimSpace(o.Header)
	return o, nil
}
