package engine

import (
	"context"
	"errors"
)

// DecideWithoutBody makes the decision a request gets from its head alone, before its
// body is read, when the head settles it: on a route that requires a credential, a
// request for which every authenticator reports ErrNoCredentials is denied as Decide
// denies it (401 auth.missing with the route's challenges), and the decision is
// observed and recorded like any other. ok is false when the head does not settle the
// request (a credential is present, an authenticator needs the body or fails, the
// route admits anonymous requests or is not ready); the front-end then reads the body
// and calls Decide.
//
// Front-ends call it for a request that sent Expect: 100-continue to a route whose
// stages read the body, so that a request without credentials never gets a 100
// Continue and never uploads its body (PROXY.md §14). Such a request skips the route's
// inspect stages, which run before authentication in Decide and may need the body: it
// is denied 401 where Decide might have denied it in an inspect stage first.
// Authenticators run again in Decide when ok is false; they are pure functions of the
// request (caches aside), so only their cost is repeated.
func (e *Engine) DecideWithoutBody(ctx context.Context, r *Request) (d Decision, ok bool) {
	start := e.now()
	e.Prepare(r)
	p := r.prep.pipeline
	if r.prep.table == nil || p == nil || p.Anonymous {
		return Decision{}, false
	}
	for i := range p.Authenticate {
		if _, err := p.Authenticate[i].Auth.Authenticate(ctx, r); !errors.Is(err, ErrNoCredentials) {
			return Decision{}, false
		}
	}
	if r.prep.route != nil {
		d.Route = r.prep.route.Name
	}
	denyMissing(p, &d)
	e.finish(ctx, r, p, &d, start)
	return d, true
}
