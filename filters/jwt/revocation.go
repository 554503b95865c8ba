package jwt

import (
	"context"
	"fmt"
)

// RevocationChecker reports whether a token was revoked, by its "jti" (empty when the
// token has none) or by its subject. A shared store implements it so that one
// revocation applies on every replica. It is called on every request, cache hits
// included, and must bound its own latency; an error is a technical failure.
type RevocationChecker interface {
	Revoked(ctx context.Context, jti, subject string) (bool, error)
}

// RevocationCheckerFunc adapts a function to RevocationChecker.
type RevocationCheckerFunc func(ctx context.Context, jti, subject string) (bool, error)

// Revoked calls f(ctx, jti, subject).
func (f RevocationCheckerFunc) Revoked(ctx context.Context, jti, subject string) (bool, error) {
	return f(ctx, jti, subject)
}

// denyLists are the configured revocations.
type denyLists struct {
	jti, sub map[string]struct{}
	checker  RevocationChecker
}

func newDenyLists(jtis, subs []string, c RevocationChecker) denyLists {
	set := func(list []string) map[string]struct{} {
		if len(list) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(list))
		for _, s := range list {
			m[s] = struct{}{}
		}
		return m
	}
	return denyLists{jti: set(jtis), sub: set(subs), checker: c}
}

// check returns errRevoked for a revoked token, or the checker's failure.
func (d *denyLists) check(ctx context.Context, r *registered) error {
	if r.jti != "" {
		if _, ok := d.jti[r.jti]; ok {
			return errRevoked
		}
	}
	if _, ok := d.sub[r.sub]; ok {
		return errRevoked
	}
	if d.checker == nil {
		return nil
	}
	revoked, err := d.checker.Revoked(ctx, r.jti, r.sub)
	if err != nil {
		return fmt.Errorf("jwt revocation check: %w", err)
	}
	if revoked {
		return errRevoked
	}
	return nil
}
