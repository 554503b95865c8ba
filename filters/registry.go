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
	"github.com/portcullis/portcullis/filters/apikey"
	"github.com/portcullis/portcullis/filters/ip"
	"github.com/portcullis/portcullis/filters/scopes"
	"github.com/portcullis/portcullis/pkg/engine"
)

// Deps are the runtime services stages need beyond their configuration.
type Deps struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
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
}

// stageBuilder builds one stage kind. p is the pipeline being built, so a kind can
// contribute pipeline-level settings (credentials to hide, challenges, body limits).
type stageBuilder func(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error)

// stageBuilders is the one table of stage kinds the registry can compile. Every kind
// config.StageKinds knows must have a row (a test checks it).
var stageBuilders = map[string]stageBuilder{
	"apikey": buildAPIKey,
	"ip":     buildIP,
	"scopes": buildScopes,
}

// Build compiles doc. Every problem is reported at once, each placed at its file,
// line and path.
func Build(doc *config.Document, deps Deps) (*Compiled, error) {
	if deps.Now == nil {
		deps.Now = time.Now
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

func buildAPIKey(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.APIKeyStage)
	var keys []apikey.Key
	for _, k := range b.doc.Providers.APIKeys {
		if len(spec.Keys) > 0 && !slices.Contains(spec.Keys, k.ID) {
			continue
		}
		if len(k.Hash.Sum) != 64 {
			return nil, nil, fmt.Errorf("key %s: hash is not a sha512 digest", k.ID)
		}
		keys = append(keys, apikey.Key{ID: k.ID, Subject: k.Subject, Hash: [64]byte(k.Hash.Sum),
			Scopes: k.Scopes, Expires: k.Expires, AllowedIPs: k.AllowedIPs, Disabled: k.Disabled})
	}
	srcs := make([]apikey.Source, len(spec.Sources))
	for i, s := range spec.Sources {
		srcs[i] = apikey.Source{Header: s.Header, Query: s.Query, Bearer: s.Bearer}
	}
	a, err := apikey.New(keys, apikey.Options{Sources: srcs, Now: b.deps.Now})
	if err != nil {
		return nil, nil, err
	}
	// A key in the URL always goes (it would end up in upstream access logs); headers
	// go unless the policy forwards credentials.
	p.StripQuery = append(p.StripQuery, a.QueryParams()...)
	if !spec.ForwardCredentials {
		p.HideHeaders = append(p.HideHeaders, a.CredentialHeaders()...)
	}
	for _, s := range spec.Sources {
		if s.Bearer {
			p.Challenges = append(p.Challenges, `Bearer realm="portcullis"`)
		} else {
			p.Challenges = append(p.Challenges, `APIKey realm="portcullis"`)
		}
	}
	return nil, a, nil
}

func buildIP(_ *builder, st *config.Stage, _ *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.IPStage)
	f, err := ip.New(ip.Options{Allow: spec.Allow, Deny: spec.Deny})
	return f, nil, err
}

func buildScopes(_ *builder, st *config.Stage, _ *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.ScopesStage)
	f, err := scopes.New(scopes.Options{Any: spec.Any, All: spec.All})
	return f, nil, err
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
