package engine

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// AuthMode says how the authenticate phase combines its authenticators.
type AuthMode uint8

const (
	// AuthAny: the first authenticator that finds a credential decides (the default).
	AuthAny AuthMode = iota
	// AuthAll: every authenticator must find and verify its credential; the identity is
	// the first one's.
	AuthAll
)

// Pipeline is a compiled policy: its stages grouped by phase.
type Pipeline struct {
	Name         string
	Inspect      []Stage
	Authenticate []Stage
	AuthMode     AuthMode
	Authorize    []Stage
	Limit        []Stage
	Decorate     []Stage
	// Anonymous lets a request without any credential pass the authenticate phase as
	// the anonymous identity. A present but invalid credential still denies.
	Anonymous bool
	// Challenges are WWW-Authenticate values sent with a 401 for missing credentials.
	Challenges []string
	// Observers see every final decision of this pipeline.
	Observers []Observer
	// BodyLimit is how many body bytes the stages need (0: none). Front-ends read up
	// to this many bytes before Decide, and mark the body truncated beyond it.
	BodyLimit int64
	// HideHeaders are lowercase request headers removed upstream on allow: credentials
	// the policy consumed (Authorization, X-API-Key) that the upstream must not see.
	HideHeaders []string
	// StripQuery are query parameters removed upstream on allow when present
	// (credentials sent in the URL, e.g. api_key, access_token).
	StripQuery []string

	hideCanonical []string // HideHeaders in canonical form, computed by NewRouteTable
}

// HostMatch matches the request authority. Pattern "*.example.com" matches any
// subdomain; a pattern without a port matches any port.
type HostMatch struct{ Pattern string }

// HeaderMatch matches one request header (all values are tried).
type HeaderMatch struct {
	Name    string // canonical form
	Exact   string
	Regex   *regexp.Regexp
	Present bool // only require presence
	Invert  bool
}

// Match is a compiled route condition. Every set field must match.
type Match struct {
	Hosts      []string // lowercase patterns; empty: any
	PathExact  string
	PathPrefix string
	PathRegex  *regexp.Regexp // matched against the whole normalized path
	// CaseInsensitive compares PathExact and PathPrefix ignoring ASCII case.
	CaseInsensitive bool
	Methods         []string // case-sensitive; empty: any
	Headers         []HeaderMatch
}

// Route binds a Match to a Pipeline.
type Route struct {
	Name     string
	Match    Match
	Pipeline *Pipeline
}

// TableOptions are the route table's global settings.
type TableOptions struct {
	// IdentityPrefix is the lowercase prefix of identity headers; default "x-portcullis-".
	IdentityPrefix string
	// DefaultStatus is the deny status when no route matches (default 404).
	DefaultStatus int
	// Default, when set, is the pipeline used when no route matches.
	Default *Pipeline
	// Closers are released when the table is replaced (background fetchers, caches).
	Closers []io.Closer
}

// RouteTable is an immutable, compiled set of routes. It is swapped whole.
type RouteTable struct {
	routes  []*Route
	byName  map[string]*Route
	opts    TableOptions
	prefix  string // lowercase identity prefix
	headers identityNames
}

// DefaultIdentityPrefix is the identity header prefix when none is configured.
const DefaultIdentityPrefix = "x-portcullis-"

// identityNames are the precomputed identity header names for a prefix.
type identityNames struct{ subject, auth, issuer, keyID, scopes string }

// NewRouteTable validates and compiles routes. Route names must be unique and non-empty.
func NewRouteTable(routes []*Route, opts TableOptions) (*RouteTable, error) {
	if opts.IdentityPrefix == "" {
		opts.IdentityPrefix = DefaultIdentityPrefix
	}
	if opts.DefaultStatus == 0 {
		opts.DefaultStatus = http.StatusNotFound
	}
	p := strings.ToLower(opts.IdentityPrefix)
	if strings.Contains(p, "_") {
		// Stripping treats '_' in inbound names as '-'; a prefix with '_' would match nothing.
		return nil, fmt.Errorf("identity prefix %q: '_' is not allowed (upstreams read it as '-')", opts.IdentityPrefix)
	}
	t := &RouteTable{
		routes: routes,
		byName: make(map[string]*Route, len(routes)),
		opts:   opts,
		prefix: p,
		headers: identityNames{
			subject: p + "subject", auth: p + "auth", issuer: p + "issuer",
			keyID: p + "key-id", scopes: p + "scopes",
		},
	}
	var errs []error
	for i, r := range routes {
		if r == nil || r.Name == "" || r.Pipeline == nil {
			errs = append(errs, fmt.Errorf("route %d: name and pipeline are required", i))
			continue
		}
		if _, dup := t.byName[r.Name]; dup {
			errs = append(errs, fmt.Errorf("route %q: duplicate name", r.Name))
			continue
		}
		if err := validatePipeline(r.Pipeline); err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", r.Name, err))
		}
		for j, h := range r.Match.Hosts {
			r.Match.Hosts[j] = strings.ToLower(h)
		}
		for j := range r.Match.Headers {
			r.Match.Headers[j].Name = http.CanonicalHeaderKey(r.Match.Headers[j].Name)
		}
		t.byName[r.Name] = r
	}
	if opts.Default != nil {
		if err := validatePipeline(opts.Default); err != nil {
			errs = append(errs, fmt.Errorf("default: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func validatePipeline(p *Pipeline) error {
	p.hideCanonical = p.hideCanonical[:0]
	for _, h := range p.HideHeaders {
		p.hideCanonical = append(p.hideCanonical, http.CanonicalHeaderKey(h))
	}
	groups := [...]struct {
		phase  Phase
		stages []Stage
	}{
		{PhaseInspect, p.Inspect}, {PhaseAuthenticate, p.Authenticate},
		{PhaseAuthorize, p.Authorize}, {PhaseLimit, p.Limit}, {PhaseDecorate, p.Decorate},
	}
	for _, g := range groups {
		for i := range g.stages {
			s := &g.stages[i]
			if err := s.Validate(); err != nil {
				return fmt.Errorf("policy %q: %w", p.Name, err)
			}
			if s.Phase != g.phase {
				return fmt.Errorf("policy %q: stage %s of phase %s listed under %s", p.Name, s.Name, s.Phase, g.phase)
			}
		}
	}
	return nil
}

// IdentityPrefix returns the lowercase identity header prefix.
func (t *RouteTable) IdentityPrefix() string { return t.prefix }

// Routes returns the routes in match order. The slice must not be modified.
func (t *RouteTable) Routes() []*Route { return t.routes }

// Close releases the table's background resources. The engine's owner calls it on the
// table a swap replaced.
func (t *RouteTable) Close() error {
	var errs []error
	for _, c := range t.opts.Closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Lookup returns the route for r: by name when r.Route is set (an unknown name matches
// nothing), else the first route whose Match matches. It does not allocate.
func (t *RouteTable) Lookup(r *Request) *Route {
	if r.Route != "" {
		return t.byName[r.Route]
	}
	for _, rt := range t.routes {
		if rt.Match.Matches(r) {
			return rt
		}
	}
	return nil
}

// Matches reports whether r satisfies every condition of m.
func (m *Match) Matches(r *Request) bool {
	if len(m.Methods) > 0 && !containsString(m.Methods, r.Method) {
		return false
	}
	if len(m.Hosts) > 0 && !matchHost(m.Hosts, r.Host) {
		return false
	}
	if !m.matchPath(r.Path) {
		return false
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(r.Header) {
			return false
		}
	}
	return true
}

func (m *Match) matchPath(p string) bool {
	if m.PathExact != "" {
		if m.CaseInsensitive {
			if !strings.EqualFold(p, m.PathExact) {
				return false
			}
		} else if p != m.PathExact {
			return false
		}
	}
	if m.PathPrefix != "" {
		if len(p) < len(m.PathPrefix) {
			return false
		}
		head := p[:len(m.PathPrefix)]
		if m.CaseInsensitive {
			if !strings.EqualFold(head, m.PathPrefix) {
				return false
			}
		} else if head != m.PathPrefix {
			return false
		}
	}
	if m.PathRegex != nil && !m.PathRegex.MatchString(p) {
		return false
	}
	return true
}

func (h *HeaderMatch) matches(hdr http.Header) bool {
	vs := hdr[h.Name]
	ok := false
	switch {
	case h.Present:
		ok = len(vs) > 0
	case h.Regex != nil:
		for _, v := range vs {
			if h.Regex.MatchString(v) {
				ok = true
				break
			}
		}
	default:
		for _, v := range vs {
			if v == h.Exact {
				ok = true
				break
			}
		}
	}
	return ok != h.Invert
}

func matchHost(patterns []string, host string) bool {
	hostNoPort := stripPort(host)
	for _, p := range patterns {
		h := host
		if !strings.Contains(p, ":") {
			h = hostNoPort
		}
		if strings.HasPrefix(p, "*.") {
			suffix := p[1:] // ".example.com"
			if len(h) > len(suffix) && strings.EqualFold(h[len(h)-len(suffix):], suffix) {
				return true
			}
			continue
		}
		if strings.EqualFold(h, p) {
			return true
		}
	}
	return false
}

// stripPort removes a trailing ":port" from an authority, keeping IPv6 brackets.
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host
	}
	return host[:i]
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
