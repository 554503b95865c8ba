package engine

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Decision is the engine's answer for one request. The zero value denies: only
// Engine.Decide sets Allow, on its last line, after every phase has passed.
type Decision struct {
	Allow bool
	// Status is the HTTP status for a deny (401, 403, 404, 413, 429, 503...); 200 on allow.
	Status int
	// Reason is a stable, machine-readable code such as "apikey.unknown" or
	// "ratelimit.over". It is safe to log and to show to clients.
	Reason string
	// Message is a short human-readable text for the client. It never contains a
	// credential or secret.
	Message string
	// DecidedBy names the stage that denied (or "route", "engine").
	DecidedBy string
	// Route is the name of the matched route ("" when none matched).
	Route string

	Identity *Identity
	// Upstream holds the mutations to apply to the request sent upstream (allow only).
	Upstream HeaderOps
	// Response holds headers for the client: WWW-Authenticate, RateLimit-*, Retry-After.
	// On allow they are added to the upstream's response. Nil when there are none.
	Response http.Header
	// Limits reports the rate limits evaluated, in the order of the request's
	// descriptors for RLS.
	Limits []LimitStatus
	// Shadowed lists stages (as "stage:reason") that would have denied in shadow mode.
	Shadowed []string
	// Elapsed is the time Decide took.
	Elapsed time.Duration
}

// SetResponseHeader sets a header for the client, allocating the map on first use.
func (d *Decision) SetResponseHeader(name, value string) {
	if d.Response == nil {
		d.Response = make(http.Header, 2)
	}
	d.Response.Set(name, value)
}

// AddResponseHeader adds a header value for the client, allocating the map on first use.
func (d *Decision) AddResponseHeader(name, value string) {
	if d.Response == nil {
		d.Response = make(http.Header, 2)
	}
	d.Response.Add(name, value)
}

// Auth methods reported in Identity.Method and the x-portcullis-auth header.
const (
	AuthJWT           = "jwt"
	AuthAPIKey        = "apikey"
	AuthHMAC          = "hmac"
	AuthMTLS          = "mtls"
	AuthIntrospection = "introspection" // opaque token checked with RFC 7662
	AuthAnonymous     = "anonymous"
)

// Identity is who the request was verified to come from. Authenticators may return a
// shared, precomputed *Identity (API keys do): nothing may modify an Identity after an
// authenticator returned it.
type Identity struct {
	Subject string
	Method  string // one of the Auth* constants
	Issuer  string
	KeyID   string
	Scopes  []string
	// ScopesHeader is Scopes joined by single spaces; authenticators fill it once so the
	// hot path does not join per request. Empty means compute from Scopes.
	ScopesHeader string
	// Claims holds verified claims (JWT payload, introspection response). Read-only.
	Claims map[string]any
	// Headers are extra upstream headers derived from the credential (claim_to_headers),
	// names lowercase without the identity prefix applied.
	Headers []HeaderValue
	// Expires is when the credential stops being valid (zero: unknown or never).
	Expires time.Time
}

// HasScope reports whether the identity carries scope s.
func (id *Identity) HasScope(s string) bool {
	if id == nil {
		return false
	}
	for _, x := range id.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// HeaderValue is one header name and value. Names are lowercase.
type HeaderValue struct{ Name, Value string }

// HeaderOps are mutations of the request sent upstream. Front-ends apply Set entries in
// order (the first entry of a name overwrites, later entries of the same name append),
// then Remove, then RemoveQuery. Decide guarantees that no name appears in both Set and
// Remove, because Envoy runs removal after set.
type HeaderOps struct {
	Set         []HeaderValue
	Remove      []string // lowercase header names
	RemoveQuery []string // query parameter names to strip (credentials sent in the URL)
}

// SetHeader appends a header to set upstream. name must be lowercase.
func (h *HeaderOps) SetHeader(name, value string) {
	h.Set = append(h.Set, HeaderValue{Name: name, Value: value})
}

// LimitStatus reports one evaluated rate limit.
type LimitStatus struct {
	Name      string
	Over      bool
	Limit     uint64        // requests allowed per Window
	Window    time.Duration // the limit's period
	Remaining uint64
	Reset     time.Duration // until the limit is fully replenished / the window resets
	Shadow    bool
}

// Denial is a policy decision to deny, returned as an error by stages. It is the only
// error that denies without counting as a technical failure.
type Denial struct {
	Status  int    // HTTP status; 0 means 403
	Reason  string // stable code, e.g. "apikey.expired"
	Message string // client-safe text; never echoes a credential
	// Header holds headers for the client (WWW-Authenticate, Retry-After, RateLimit-*).
	Header http.Header
}

func (d *Denial) Error() string {
	return fmt.Sprintf("denied %d %s", d.Status, d.Reason)
}

// Deny returns a Denial with the given status and reason; the message defaults to the
// status text.
func Deny(status int, reason, message string) *Denial {
	if message == "" {
		message = http.StatusText(status)
	}
	return &Denial{Status: status, Reason: reason, Message: message}
}

// ErrNoCredentials is returned by an Authenticator when the request carries no
// credential of its kind, so the next authenticator may try.
var ErrNoCredentials = errors.New("no credentials")

// errNilIdentity marks an authenticator that returned neither an identity nor an error.
var errNilIdentity = errors.New("authenticator returned no identity and no error")

// ErrNoRoute is the reason behind the default deny when no route matched.
var ErrNoRoute = errors.New("no route matched")
