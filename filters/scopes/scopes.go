// Package scopes authorizes requests by the scopes of the verified identity, in the
// authorize phase.
//
// A request passes when its identity carries every scope of All and, if Any is
// non-empty, at least one scope of Any. Otherwise it is denied with 403
// "scopes.insufficient". When the identity came from a JWT, the denial carries the RFC
// 6750 challenge `Bearer error="insufficient_scope", scope="..."`, whose scope attribute
// lists the scopes of All followed by those of Any (RFC 6750 cannot say "one of", so
// the list names every scope the route mentions). Other methods get no challenge: API
// keys, HMAC and mTLS credentials are not OAuth tokens and the client cannot obtain a
// wider token by following a Bearer challenge.
//
// The anonymous identity has no scopes, so it is denied with the same 403 and no
// challenge. A 401 would invite the client to authenticate, but this stage cannot know
// whether the route offers any authenticator; a route that needs credentials should not
// allow anonymous access, and then the engine answers 401 "auth.missing" with the
// policy's challenges before this stage runs.
//
// Matching is exact and case-sensitive; checks compare strings without allocating.
package scopes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/portcullis/portcullis/pkg/engine"
)

// ReasonInsufficient is the reason code of every denial this package returns.
const ReasonInsufficient = "scopes.insufficient"

// Options configure a Filter. At least one list must be non-empty.
type Options struct {
	Any []string // at least one of these is required (when non-empty)
	All []string // every one of these is required
}

// Filter is a compiled scope requirement. It is immutable and safe for concurrent use.
type Filter struct {
	any, all []string
	// Denials are built once and shared read-only.
	bearer, plain *engine.Denial
}

var _ engine.Filter = (*Filter)(nil)

// New validates opts and builds the filter. Scopes must be RFC 6749 scope tokens
// (printable ASCII without spaces, quotes or backslashes); duplicates are dropped.
func New(opts Options) (*Filter, error) {
	if len(opts.Any) == 0 && len(opts.All) == 0 {
		return nil, errors.New("scopes: any or all is required")
	}
	var errs []error
	for _, s := range slices.Concat(opts.All, opts.Any) {
		if !validScope(s) {
			errs = append(errs, fmt.Errorf("invalid scope %q: want printable ASCII without spaces, quotes or backslashes", s))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("scopes: %w", errors.Join(errs...))
	}
	f := &Filter{all: dedupe(opts.All), any: dedupe(opts.Any)}
	const msg = "insufficient scope"
	f.plain = engine.Deny(http.StatusForbidden, ReasonInsufficient, msg)
	f.bearer = engine.Deny(http.StatusForbidden, ReasonInsufficient, msg)
	challenge := `Bearer error="insufficient_scope", scope="` +
		strings.Join(slices.Concat(f.all, f.any), " ") + `"`
	f.bearer.Header = http.Header{"Www-Authenticate": {challenge}}
	return f, nil
}

// dedupe returns s without repeated elements, keeping the first occurrence's order.
func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// validScope accepts an RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Check passes when d.Identity satisfies the requirement. A nil identity (a pipeline
// misuse: the engine always sets one before authorize) is denied.
func (f *Filter) Check(_ context.Context, _ *engine.Request, d *engine.Decision) error {
	id := d.Identity
	if id == nil || !f.satisfied(id) {
		return f.denial(id)
	}
	return nil
}

func (f *Filter) satisfied(id *engine.Identity) bool {
	for _, s := range f.all {
		if !id.HasScope(s) {
			return false
		}
	}
	if len(f.any) == 0 {
		return true
	}
	for _, s := range f.any {
		if id.HasScope(s) {
			return true
		}
	}
	return false
}

func (f *Filter) denial(id *engine.Identity) *engine.Denial {
	if id != nil && id.Method == engine.AuthJWT {
		return f.bearer
	}
	return f.plain
}
