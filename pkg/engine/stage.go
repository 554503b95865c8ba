package engine

import (
	"context"
	"fmt"
)

// Phase is one of the fixed, ordered steps of a decision. Users choose the stages
// within a phase, never the order of phases.
type Phase uint8

// The phases, in the order Decide runs them.
const (
	PhaseInspect      Phase = iota + 1 // IP rules, bans, WAF, size rules, per-IP limits
	PhaseAuthenticate                  // first authenticator that finds a credential decides
	PhaseAuthorize                     // scopes, roles, CEL: all must pass
	PhaseLimit                         // identity-keyed quotas: all must pass
	PhaseDecorate                      // identity headers, CORS, security headers: cannot deny
)

var phaseNames = [...]string{"", "inspect", "authenticate", "authorize", "limit", "decorate"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) && p > 0 {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Authenticator finds and verifies a credential. It returns ErrNoCredentials when the
// request carries no credential of its kind, a *Denial when a credential is present but
// invalid (never falls through to the next authenticator), or another error for a
// technical failure (handled by the stage's OnError).
type Authenticator interface {
	Authenticate(ctx context.Context, r *Request) (*Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, r *Request) (*Identity, error)

// Authenticate calls f(ctx, r).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, r *Request) (*Identity, error) {
	return f(ctx, r)
}

// Filter checks a request in the inspect, authorize, limit or decorate phase. It returns
// nil to pass, a *Denial to deny, or another error for a technical failure. A filter may
// add to d.Upstream, d.Response and d.Limits; d.Identity is set from the authenticate
// phase on.
type Filter interface {
	Check(ctx context.Context, r *Request, d *Decision) error
}

// FilterFunc adapts a function to Filter.
type FilterFunc func(ctx context.Context, r *Request, d *Decision) error

// Check calls f(ctx, r, d).
func (f FilterFunc) Check(ctx context.Context, r *Request, d *Decision) error { return f(ctx, r, d) }

// Observer sees every final decision of a pipeline it belongs to, after the fact (the
// brute-force stage counts authentication failures this way). Observe must be fast and
// must not block on I/O beyond its own bounded timeout.
type Observer interface {
	Observe(ctx context.Context, r *Request, d *Decision)
}

// OnError says what a technical failure of a stage does.
type OnError uint8

const (
	// OnErrorDeny denies with 503 (the default: fail closed).
	OnErrorDeny OnError = iota
	// OnErrorAllow skips the stage, as if it had passed (logged and counted).
	OnErrorAllow
)

// Stage is one configured step of a pipeline. Exactly one of Auth and Filter is set:
// Auth in the authenticate phase, Filter in every other phase.
type Stage struct {
	Name    string // e.g. "ip", "apikey", "jwt:corp"; used in metrics, logs, DecidedBy
	Phase   Phase
	Auth    Authenticator
	Filter  Filter
	OnError OnError
	// Shadow makes a denial count and log without denying.
	Shadow bool
}

// Validate reports whether the stage is well formed.
func (s *Stage) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("stage without a name")
	case s.Phase < PhaseInspect || s.Phase > PhaseDecorate:
		return fmt.Errorf("stage %s: invalid phase %d", s.Name, s.Phase)
	case s.Phase == PhaseAuthenticate && (s.Auth == nil || s.Filter != nil):
		return fmt.Errorf("stage %s: the authenticate phase takes an Authenticator only", s.Name)
	case s.Phase != PhaseAuthenticate && (s.Filter == nil || s.Auth != nil):
		return fmt.Errorf("stage %s: the %s phase takes a Filter only", s.Name, s.Phase)
	}
	return nil
}
