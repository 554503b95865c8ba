package config

import (
	"net/netip"
	"regexp"
	"strings"
)

// Route sends the requests its Match selects to a policy. Routes are tried in order;
// the first match wins.
type Route struct {
	Name   string `yaml:"name"`   // unique; used by Envoy context_extensions["route"]
	Policy string `yaml:"policy"` // a key of policies
	Match  Match  `yaml:"match"`  // empty: every request

	Pos Position `yaml:"-"`
}

// Validate checks the name and that the policy exists.
func (r *Route) Validate(v *Validator, path string) {
	checkName(v, joinPath(path, "name"), "route name", r.Name)
	if r.Policy == "" {
		v.Errorf(joinPath(path, "policy"), "policy is required")
	} else if _, ok := v.Document().Policies[r.Policy]; !ok {
		v.Errorf(joinPath(path, "policy"), "unknown policy %q", r.Policy)
	}
}

// Match selects requests. Every condition given must hold.
type Match struct {
	// Hosts are authority patterns: "api.example.com", "*.example.com" (any
	// subdomain), optionally with ":port". Empty: any host.
	Hosts   []string      `yaml:"hosts"`
	Path    PathMatch     `yaml:"path"`
	Methods []string      `yaml:"methods"` // uppercase; empty: any method
	Headers []HeaderMatch `yaml:"headers"`
}

// Validate checks host patterns and methods.
func (m *Match) Validate(v *Validator, path string) {
	for i, h := range m.Hosts {
		if msg := checkHostPattern(h); msg != "" {
			v.Errorf(indexPath(joinPath(path, "hosts"), i), "invalid host %q: %s", h, msg)
		}
	}
	for i, meth := range m.Methods {
		if !isToken(meth) || strings.ToUpper(meth) != meth {
			v.Errorf(indexPath(joinPath(path, "methods"), i), "invalid method %q: methods are uppercase tokens such as GET", meth)
		}
	}
}

func checkHostPattern(h string) string {
	if h == "*" || h == "" {
		return "leave hosts out to match any host"
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.HasPrefix(name, "[") {
		end := strings.IndexByte(name, ']')
		if end < 0 {
			return "unterminated IPv6 literal"
		}
		if a, err := netip.ParseAddr(name[1:end]); err != nil || !a.Is6() || a.Zone() != "" {
			return "bad IPv6 literal"
		}
		return checkPort(name[end+1:])
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		if msg := checkPort(name[i:]); msg != "" {
			return msg
		}
		name = name[:i]
	}
	if name == "" {
		return "empty host name"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return "host names are letters, digits, '-' and '.', with an optional leading '*.' and ':port'"
		}
	}
	return ""
}

func checkPort(s string) string {
	if s == "" {
		return ""
	}
	if msg := checkAddress("h" + s); msg != "" {
		return "bad port"
	}
	return ""
}

// PathMatch matches the normalized request path with at most one of Exact, Prefix and
// Regex.
type PathMatch struct {
	Exact  string `yaml:"exact"`
	Prefix string `yaml:"prefix"`
	// Regex is RE2 syntax, unanchored (write ^ and $ to anchor).
	Regex string `yaml:"regex"`
	// CaseInsensitive compares ignoring ASCII case (for Regex: adds the (?i) flag).
	CaseInsensitive bool `yaml:"case_insensitive"`
}

// Validate checks that at most one matcher is set and that it is well formed.
func (pm *PathMatch) Validate(v *Validator, path string) {
	n := 0
	for _, m := range []struct{ key, val string }{{"exact", pm.Exact}, {"prefix", pm.Prefix}, {"regex", pm.Regex}} {
		p := joinPath(path, m.key)
		if !v.Has(p) {
			continue
		}
		n++
		if m.key != "regex" && !strings.HasPrefix(m.val, "/") {
			v.Errorf(p, "a path %s must start with '/'", m.key)
		}
	}
	if n > 1 {
		v.Errorf(path, "set at most one of exact, prefix and regex")
	}
	checkRegex(v, joinPath(path, "regex"), pm.Regex, pm.CaseInsensitive)
}

// CompileRegex compiles Regex (nil when empty), honoring CaseInsensitive.
func (pm *PathMatch) CompileRegex() (*regexp.Regexp, error) {
	return compileRegex(pm.Regex, pm.CaseInsensitive)
}

func checkRegex(v *Validator, path, expr string, fold bool) {
	if !v.Has(path) {
		return
	}
	if expr == "" {
		v.Errorf(path, "regex is empty")
		return
	}
	if _, err := compileRegex(expr, fold); err != nil {
		v.Errorf(path, "invalid regex: %v", err)
	}
}

func compileRegex(expr string, fold bool) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	if fold {
		expr = "(?i)" + expr
	}
	return regexp.Compile(expr)
}

// HeaderMatch matches one request header: exactly one of Exact (a value equal to it),
// Regex (a value matching it, RE2, unanchored) or Present (the header exists).
// Invert negates the result.
type HeaderMatch struct {
	Name    string `yaml:"name"`
	Exact   string `yaml:"exact"`
	Regex   string `yaml:"regex"`
	Present bool   `yaml:"present"`
	Invert  bool   `yaml:"invert"`
}

// Validate checks the name and that exactly one condition is given.
func (h *HeaderMatch) Validate(v *Validator, path string) {
	if !isToken(h.Name) {
		v.Errorf(joinPath(path, "name"), "invalid header name %q", h.Name)
	}
	n := 0
	for _, k := range []string{"exact", "regex", "present"} {
		if v.Has(joinPath(path, k)) {
			n++
		}
	}
	if n != 1 {
		v.Errorf(path, "a header match needs exactly one of exact, regex and present")
	}
	if v.Has(joinPath(path, "present")) && !h.Present {
		v.Errorf(joinPath(path, "present"), "present: false matches nothing; use present: true with invert: true")
	}
	checkRegex(v, joinPath(path, "regex"), h.Regex, false)
}

// CompileRegex compiles Regex (nil when empty).
func (h *HeaderMatch) CompileRegex() (*regexp.Regexp, error) { return compileRegex(h.Regex, false) }
