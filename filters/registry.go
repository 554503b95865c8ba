// Package filters compiles a configuration document into the engine's route table: it
// holds the one explicit table of stage kinds (config kind name -> typed constructor)
// and builds every stage, route and policy at load time, so the request path only
// reads immutable structures.
package filters

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/bruteforce"
	"github.com/portcullis/portcullis/filters/jwt"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
)

// Deps are the runtime services stages need beyond their configuration.
type Deps struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Store holds shared state (rate counters, replay sets, bans). The process creates
	// it once, so state survives reloads; nil means a private in-memory store.
	Store store.Store
	// Offline compiles without starting background work (remote key fetches), for
	// validation and tools; the compiled table is not meant to serve.
	Offline bool
	// OnKeyFetch observes every remote JWKS fetch (metrics, logs). It must not block.
	// Nil: not reported.
	OnKeyFetch func(jwt.FetchEvent)
	// Limiter returns the rate limiter that applies a store failure policy
	// (on_store_error). Nil means Store.Limiter when Store is a *store.Guard, else
	// Store itself for every policy (a memory store does not fail).
	Limiter func(store.Policy) store.Limiter
	// OnRateLimited is called for each limit a request exceeds, shadow limits included
	// (metrics). It runs on the request path and must be fast. Nil: not reported.
	OnRateLimited func(limit string, shadow bool)
	// OnBruteForce is called on every brute-force level change and ban (metrics,
	// audit log). Nil: not reported.
	OnBruteForce func(bruteforce.Event)
	// OnStateError is called when an observer cannot record state (a brute-force
	// failure count). Nil: ignored.
	OnStateError func(error)
}

// Check is a readiness condition contributed by a stage (e.g. a JWKS fetched once).
type Check struct {
	Name  string
	Check func() error
}

// Compiled is a document compiled for the engine.
type Compiled struct {
	Table  *engine.RouteTable
	Checks []Check
}

// builder carries the state of one Build.
type builder struct {
	doc    *config.Document
	deps   Deps
	errs   config.Errors
	checks []Check
	closer []io.Closer
	// tokenProviders shares JWT and introspection authenticators between the
	// policies of one Build (build_jwt.go).
	tokenProviders *tokenProviders
}

// stageBuilder builds one stage kind. p is the pipeline being built, so a kind can
// contribute pipeline-level settings (credentials to hide, challenges, body limits).
type stageBuilder func(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error)

// stageBuilders is the one table of stage kinds the registry can compile; each
// builder lives in build_<kind>.go. Every kind config.StageKinds knows must have a row
// (a test checks it).
var stageBuilders = map[string]stageBuilder{
	"apikey":        buildAPIKey,
	"bruteforce":    buildBruteForce,
	"hmac":          buildHMAC,
	"introspection": buildIntrospection,
	"ip":            buildIP,
	"jwt":           buildJWT,
	"ratelimit":     buildRateLimit,
	"scopes":        buildScopes,
}

// Build compiles doc. Every problem is reported at once, each placed at its file,
// line and path.
func Build(doc *config.Document, deps Deps) (*Compiled, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Store == nil {
		deps.Store = store.NewMemory(store.MemoryOptions{})
	}
	b := &builder{doc: doc, deps: deps}
	pipelines := make(map[string]*engine.Pipeline, len(doc.Policies))
	for _, name := range doc.PolicyNames() {
		pipelines[name] = b.pipeline(doc.Policies[name])
	}
	routes := make([]*engine.Route, 0, len(doc.Routes))
	for i := range doc.Routes {
		if rt := b.route(i, &doc.Routes[i], pipelines); rt != nil {
			routes = append(routes, rt)
		}
	}
	opts := engine.TableOptions{IdentityPrefix: doc.Identity.HeaderPrefix, DefaultStatus: doc.Default.Status,
		Closers: b.closer}
	if doc.Default.Policy != "" {
		opts.Default = pipelines[doc.Default.Policy]
	}
	if len(b.errs) > 0 {
		b.close()
		return nil, b.errs
	}
	t, err := engine.NewRouteTable(routes, opts)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("%s: %w", doc.Source, err)
	}
	return &Compiled{Table: t, Checks: b.checks}, nil
}

func (b *builder) close() {
	for _, c := range b.closer {
		_ = c.Close()
	}
}

func (b *builder) errorf(path, format string, args ...any) {
	b.errs = append(b.errs, b.doc.Errorf(path, format, args...))
}

var phases = map[config.Phase]engine.Phase{
	config.PhaseInspect: engine.PhaseInspect, config.PhaseAuthenticate: engine.PhaseAuthenticate,
	config.PhaseAuthorize: engine.PhaseAuthorize, config.PhaseLimit: engine.PhaseLimit,
	config.PhaseDecorate: engine.PhaseDecorate,
}

func (b *builder) pipeline(pol *config.Policy) *engine.Pipeline {
	p := &engine.Pipeline{Name: pol.Name, Anonymous: pol.Anonymous}
	if pol.AuthMode == config.AuthModeAll {
		p.AuthMode = engine.AuthAll
	}
	for _, ph := range pol.Phases() {
		var stages []engine.Stage
		for i := range ph.Stages {
			if s, ok := b.stage(&ph.Stages[i], phases[ph.Phase], p); ok {
				stages = append(stages, s)
			}
		}
		switch ph.Phase {
		case config.PhaseInspect:
			p.Inspect = stages
		case config.PhaseAuthenticate:
			p.Authenticate = stages
		case config.PhaseAuthorize:
			p.Authorize = stages
		case config.PhaseLimit:
			p.Limit = stages
		case config.PhaseDecorate:
			p.Decorate = stages
		}
	}
	p.Challenges = dedupe(p.Challenges)
	p.HideHeaders = dedupe(p.HideHeaders)
	p.StripQuery = dedupe(p.StripQuery)
	return p
}

func (b *builder) stage(st *config.Stage, phase engine.Phase, p *engine.Pipeline) (engine.Stage, bool) {
	build, ok := stageBuilders[st.Kind]
	if !ok {
		b.errorf(st.Pos.Path, "stage kind %q has no compiler in this build", st.Kind)
		return engine.Stage{}, false
	}
	f, a, err := build(b, st, p)
	if err != nil {
		b.errorf(st.Pos.Path+"."+st.Kind, "%v", err)
		return engine.Stage{}, false
	}
	s := engine.Stage{Name: st.Kind, Phase: phase, Shadow: st.Shadow}
	if st.OnError == config.OnErrorAllow {
		s.OnError = engine.OnErrorAllow
	}
	if phase == engine.PhaseAuthenticate {
		s.Auth = a
	} else {
		s.Filter = f
	}
	if err := s.Validate(); err != nil {
		b.errorf(st.Pos.Path, "%v", err)
		return engine.Stage{}, false
	}
	return s, true
}

func (b *builder) route(i int, r *config.Route, pipelines map[string]*engine.Pipeline) *engine.Route {
	path := fmt.Sprintf("routes[%d]", i)
	m := engine.Match{
		Hosts:           slices.Clone(r.Match.Hosts),
		Methods:         slices.Clone(r.Match.Methods),
		PathExact:       r.Match.Path.Exact,
		PathPrefix:      r.Match.Path.Prefix,
		CaseInsensitive: r.Match.Path.CaseInsensitive,
	}
	re, err := r.Match.Path.CompileRegex()
	if err != nil {
		b.errorf(path+".match.path.regex", "invalid regex: %v", err)
	}
	m.PathRegex = re
	for j := range r.Match.Headers {
		h := &r.Match.Headers[j]
		hre, err := h.CompileRegex()
		if err != nil {
			b.errorf(fmt.Sprintf("%s.match.headers[%d].regex", path, j), "invalid regex: %v", err)
		}
		m.Headers = append(m.Headers, engine.HeaderMatch{Name: http.CanonicalHeaderKey(h.Name),
			Exact: h.Exact, Regex: hre, Present: h.Present, Invert: h.Invert})
	}
	p := pipelines[r.Policy]
	if p == nil {
		b.errorf(path+".policy", "unknown policy %q", r.Policy)
		return nil
	}
	return &engine.Route{Name: r.Name, Match: m, Pipeline: p}
}

// dedupe removes repeated strings, keeping the first occurrence's order.
func dedupe(in []string) []string {
	out := in[:0]
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
