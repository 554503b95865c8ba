package engine

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Recorder receives every decision and every technical stage failure (metrics and
// logs). It must be safe for concurrent use and must not retain d.
type Recorder interface {
	Decided(r *Request, d *Decision)
	StageFailed(r *Request, stage string, err error)
}

type nopRecorder struct{}

func (nopRecorder) Decided(*Request, *Decision)         {}
func (nopRecorder) StageFailed(*Request, string, error) {}

// Engine decides requests against the current RouteTable. It is safe for concurrent
// use; the table is replaced whole with Swap and never locked on the hot path.
type Engine struct {
	table atomic.Pointer[RouteTable]
	now   func() time.Time
	rec   Recorder
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithRecorder sets the metrics/log recorder.
func WithRecorder(r Recorder) Option { return func(e *Engine) { e.rec = r } }

// New returns an engine with table t (which may be nil: the engine then denies every
// request with 503 until Swap installs one).
func New(t *RouteTable, opts ...Option) *Engine {
	e := &Engine{now: time.Now, rec: nopRecorder{}}
	for _, o := range opts {
		o(e)
	}
	if t != nil {
		e.table.Store(t)
	}
	return e
}

// Swap installs t and returns the table it replaced (nil at first). In-flight decisions
// finish on the table they started with; the caller closes the old table once they
// are drained.
func (e *Engine) Swap(t *RouteTable) *RouteTable { return e.table.Swap(t) }

// Table returns the current route table (nil before the first Swap).
func (e *Engine) Table() *RouteTable { return e.table.Load() }

// Ready reports whether a route table is installed.
func (e *Engine) Ready() bool { return e.table.Load() != nil }

// prepared is what Prepare computed, carried in the Request to Decide.
type prepared struct {
	done     bool
	table    *RouteTable
	route    *Route
	pipeline *Pipeline
	stripped []string // lowercase identity header names removed from the request
	// underscore: some header name has a '_' (hideCredentials looks for '_' spellings
	// of hidden headers only then, instead of walking the headers again).
	underscore bool
}

// Prepare strips inbound identity headers from r.Header, picks the route on the current
// table and returns how many body bytes its stages need (0: none), so a front-end reads
// the body only when a stage will look at it. Decide calls it when the front-end did not.
func (e *Engine) Prepare(r *Request) (bodyLimit int64) {
	if r.prep.done {
		if r.prep.pipeline != nil {
			return r.prep.pipeline.BodyLimit
		}
		return 0
	}
	r.prep.done = true
	t := e.table.Load()
	if t == nil {
		return 0
	}
	r.prep.table = t
	r.prep.stripped, r.prep.underscore = stripPrefixed(r.Header, t.prefix)
	r.prep.route = t.Lookup(r)
	if r.prep.route != nil {
		r.prep.pipeline = r.prep.route.Pipeline
	} else {
		r.prep.pipeline = t.opts.Default
	}
	if r.prep.pipeline == nil {
		return 0
	}
	return r.prep.pipeline.BodyLimit
}

// stripPrefixed deletes every header whose name starts with prefix (ASCII
// case-insensitive, and with '_' standing for '-': CGI-style stacks such as PHP, WSGI
// and Rack read X_Portcullis_Subject as X-Portcullis-Subject) and returns the removed
// names in lowercase, and whether any remaining name contains '_'. It allocates only
// when it finds one.
func stripPrefixed(h http.Header, prefix string) (removed []string, underscore bool) {
	for k := range h {
		if hasIdentityPrefix(k, prefix) {
			removed = append(removed, strings.ToLower(k))
			delete(h, k)
		} else if !underscore && strings.IndexByte(k, '_') >= 0 {
			underscore = true
		}
	}
	return removed, underscore
}

// hasIdentityPrefix reports whether name starts with the lowercase prefix, ignoring
// ASCII case and treating '_' in name as '-'.
func hasIdentityPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// Decide runs the matched route's pipeline on r and returns the decision. It never
// panics on input and fails closed: any path that does not reach the last line denies.
func (e *Engine) Decide(ctx context.Context, r *Request) Decision {
	start := e.now()
	var d Decision
	e.Prepare(r)
	p := r.prep.pipeline
	switch {
	case r.prep.table == nil:
		d.deny(http.StatusServiceUnavailable, "engine.not_ready", "engine", "not ready")
	case p == nil:
		d.deny(r.prep.table.opts.DefaultStatus, "route.none", "route", "")
	default:
		if r.prep.route != nil {
			d.Route = r.prep.route.Name
		}
		e.decide(ctx, r, p, &d)
	}
	e.finish(ctx, r, p, &d, start)
	return d
}

// finish completes a decision that began at start: its duration, the pipeline's
// observers and the recorder.
func (e *Engine) finish(ctx context.Context, r *Request, p *Pipeline, d *Decision, start time.Time) {
	d.Elapsed = e.now().Sub(start)
	if p != nil {
		for _, o := range p.Observers {
			o.Observe(ctx, r, d)
		}
	}
	e.rec.Decided(r, d)
}

// decide runs the phases. It sets d.Allow only on its last line.
func (e *Engine) decide(ctx context.Context, r *Request, p *Pipeline, d *Decision) {
	d.Upstream.Set = make([]HeaderValue, 0, 6)
	if !e.runFilters(ctx, r, p.Inspect, d) || !e.authenticate(ctx, r, p, d) {
		return
	}
	if d.Identity == nil {
		if !p.Anonymous {
			denyMissing(p, d)
			return
		}
		d.Identity = anonymous
	}
	if !e.runFilters(ctx, r, p.Authorize, d) || !e.runFilters(ctx, r, p.Limit, d) {
		return
	}
	if !validIdentity(d.Identity) {
		d.deny(http.StatusUnauthorized, "identity.invalid", "authenticate", "the credential carries an identity that cannot be sent upstream")
		return
	}
	e.setIdentityHeaders(r, d)
	if !e.runFilters(ctx, r, p.Decorate, d) {
		return
	}
	e.removeSpoofed(r, d)
	hideCredentials(r, p, d)
	if ctx.Err() != nil {
		d.deny(http.StatusServiceUnavailable, "engine.canceled", "engine", "")
		return
	}
	d.Status = http.StatusOK
	d.Allow = true
}

var anonymous = &Identity{Method: AuthAnonymous}

// denyMissing denies for missing credentials, with p's challenges.
func denyMissing(p *Pipeline, d *Decision) {
	d.deny(http.StatusUnauthorized, "auth.missing", "authenticate", "credentials required")
	for _, c := range p.Challenges {
		d.AddResponseHeader("Www-Authenticate", c)
	}
}

// runFilters runs stages in order; it returns false when the decision is a deny.
func (e *Engine) runFilters(ctx context.Context, r *Request, stages []Stage, d *Decision) bool {
	for i := range stages {
		s := &stages[i]
		if err := s.Filter.Check(ctx, r, d); err != nil && !e.failed(r, s, err, d) {
			return false
		}
	}
	return true
}

// authenticate runs the authenticate phase; it returns false when the decision is a deny.
func (e *Engine) authenticate(ctx context.Context, r *Request, p *Pipeline, d *Decision) bool {
	missing := 0
	for i := range p.Authenticate {
		s := &p.Authenticate[i]
		id, err := s.Auth.Authenticate(ctx, r)
		switch {
		case err == nil && id != nil:
			if d.Identity == nil {
				d.Identity = id
			}
			if p.AuthMode == AuthAny {
				return true
			}
			continue
		case err == nil:
			// An authenticator must return an identity, ErrNoCredentials or an error;
			// (nil, nil) is a bug, and treating it as "no credential" would fail open.
			err = errNilIdentity
		case errors.Is(err, ErrNoCredentials):
			missing++
			continue
		}
		if !e.failed(r, s, err, d) {
			return false
		}
		missing++ // a shadowed denial or an allowed failure counts as no credential
	}
	if p.AuthMode == AuthAll && d.Identity != nil && missing > 0 {
		// Some but not all required credentials: the request is not anonymous, so this
		// is a deny whatever Anonymous says.
		d.Identity = nil
		d.deny(http.StatusUnauthorized, "auth.incomplete", "authenticate", "all required credentials must be present")
		return false
	}
	return true
}

// failed applies a stage error to d and reports whether evaluation continues.
func (e *Engine) failed(r *Request, s *Stage, err error, d *Decision) (pass bool) {
	den, ok := err.(*Denial)
	if !ok && !errors.As(err, &den) {
		e.rec.StageFailed(r, s.Name, err)
		if s.OnError == OnErrorAllow {
			return true
		}
		d.deny(http.StatusServiceUnavailable, "stage.unavailable", s.Name, "")
		return false
	}
	if s.Shadow || s.Phase == PhaseDecorate {
		d.Shadowed = append(d.Shadowed, s.Name+":"+den.Reason)
		return true
	}
	status := den.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	d.deny(status, den.Reason, s.Name, den.Message)
	for k, vs := range den.Header {
		for _, v := range vs {
			d.AddResponseHeader(k, v)
		}
	}
	return false
}

// deny records a denial. It clears identity-dependent upstream mutations, which only
// apply to an allowed request.
func (d *Decision) deny(status int, reason, by, msg string) {
	d.Allow = false
	d.Status = status
	d.Reason = reason
	d.DecidedBy = by
	if msg == "" {
		msg = http.StatusText(status)
	}
	d.Message = msg
	d.Upstream = HeaderOps{}
}

// setIdentityHeaders writes the identity contract headers (DESIGN.md §4).
func (e *Engine) setIdentityHeaders(r *Request, d *Decision) {
	n := &r.prep.table.headers
	id := d.Identity
	if id.Subject != "" {
		d.Upstream.SetHeader(n.subject, id.Subject)
	}
	d.Upstream.SetHeader(n.auth, id.Method)
	if id.Issuer != "" {
		d.Upstream.SetHeader(n.issuer, id.Issuer)
	}
	if id.KeyID != "" {
		d.Upstream.SetHeader(n.keyID, id.KeyID)
	}
	if len(id.Scopes) > 0 {
		s := id.ScopesHeader
		if s == "" {
			s = strings.Join(id.Scopes, " ")
		}
		d.Upstream.SetHeader(n.scopes, s)
	}
	d.Upstream.Set = append(d.Upstream.Set, id.Headers...)
}

// removeSpoofed lists the stripped inbound identity headers the decision does not set,
// so Envoy removes them; a header that is set is overwritten instead (Envoy removes
// after setting, so listing it in both would delete the value we set).
func (e *Engine) removeSpoofed(r *Request, d *Decision) {
outer:
	for _, name := range r.prep.stripped {
		for _, s := range d.Upstream.Set {
			if s.Name == name {
				continue outer
			}
		}
		for _, x := range d.Upstream.Remove {
			if x == name {
				continue outer
			}
		}
		d.Upstream.Remove = append(d.Upstream.Remove, name)
	}
}

// hideCredentials removes consumed credentials from the upstream request.
func hideCredentials(r *Request, p *Pipeline, d *Decision) {
	for i, h := range p.hideCanonical {
		if _, ok := r.Header[h]; ok && !setsHeader(d.Upstream.Set, p.HideHeaders[i]) {
			d.Upstream.Remove = append(d.Upstream.Remove, p.HideHeaders[i])
		}
	}
	if len(p.HideHeaders) > 0 && (r.prep.underscore || !r.prep.done) {
		hideUnderscoreSpellings(r, p, d)
	}
	if len(p.StripQuery) == 0 || r.RawQuery == "" {
		return
	}
	q := r.Query()
	for _, name := range p.StripQuery {
		if _, ok := q[name]; ok {
			d.Upstream.RemoveQuery = append(d.Upstream.RemoveQuery, name)
		}
	}
}

// hideUnderscoreSpellings removes inbound headers that spell a hidden name with '_'
// for '-' (x_tenant for x-tenant): CGI-style upstreams read them as the hidden header,
// and Envoy forwards them by default. Only names containing '_' are examined.
func hideUnderscoreSpellings(r *Request, p *Pipeline, d *Decision) {
	for k := range r.Header {
		if strings.IndexByte(k, '_') < 0 {
			continue
		}
		for _, h := range p.HideHeaders {
			if len(k) == len(h) && hasIdentityPrefix(k, h) {
				d.Upstream.Remove = append(d.Upstream.Remove, strings.ToLower(k))
				break
			}
		}
	}
}

// validIdentity reports whether every identity value can travel in a header: no
// control bytes (CR, LF and NUL would be header injection), and scopes that are RFC
// 6749 scope-tokens, so the space-separated scopes header cannot be split differently.
func validIdentity(id *Identity) bool {
	if !headerSafe(id.Subject) || !headerSafe(id.Issuer) || !headerSafe(id.KeyID) {
		return false
	}
	for _, s := range id.Scopes {
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return false
			}
		}
	}
	for _, h := range id.Headers {
		if !headerSafe(h.Value) {
			return false
		}
	}
	return true
}

// headerSafe reports whether v has no control bytes other than horizontal tab.
func headerSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// setsHeader reports whether set has an entry for name (lowercase). A hidden
// credential header that the decision sets itself (an absolute claim header) is
// overwritten, never removed: Envoy removes after setting.
func setsHeader(set []HeaderValue, name string) bool {
	for _, h := range set {
		if h.Name == name {
			return true
		}
	}
	return false
}

// StrippedIdentityHeaders returns the lowercase names of inbound identity headers that
// Prepare removed from r.Header (for audit logs and front-ends).
func (r *Request) StrippedIdentityHeaders() []string { return r.prep.stripped }
