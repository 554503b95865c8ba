package httpsig

import (
	"fmt"
	"strings"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// Derived component names (RFC 9421 Section 2.2).
const (
	ComponentMethod        = "@method"
	ComponentTargetURI     = "@target-uri"
	ComponentAuthority     = "@authority"
	ComponentScheme        = "@scheme"
	ComponentRequestTarget = "@request-target"
	ComponentPath          = "@path"
	ComponentQuery         = "@query"
	ComponentQueryParam    = "@query-param"
	ComponentStatus        = "@status"
	componentSigParams     = "@signature-params"
)

// derivedKind identifies a derived component; 0 is an HTTP field.
type derivedKind uint8

const (
	fieldComponent derivedKind = iota
	dMethod
	dTargetURI
	dAuthority
	dScheme
	dRequestTarget
	dPath
	dQuery
	dQueryParam
	dStatus
)

var derivedNames = map[string]derivedKind{
	ComponentMethod: dMethod, ComponentTargetURI: dTargetURI, ComponentAuthority: dAuthority,
	ComponentScheme: dScheme, ComponentRequestTarget: dRequestTarget, ComponentPath: dPath,
	ComponentQuery: dQuery, ComponentQueryParam: dQueryParam, ComponentStatus: dStatus,
}

// Component is one covered component identifier: an HTTP field name or a derived
// component, with its parameters (sf, key, bs, req, name). The identifier keeps the
// parameter order it was written with, because the signature base reproduces it.
type Component struct {
	id      sfv.Item
	kind    derivedKind
	sf, bs  bool
	req     bool
	hasKey  bool
	key     string // dictionary member name (`key`)
	qparam  string // @query-param name, decoded
	derived bool
}

// Name returns the component name: a lowercase field name or "@method" etc.
func (c *Component) Name() string { return c.id.Value.Str }

// String returns the serialized component identifier, e.g. `"@query-param";name="id"`.
func (c *Component) String() string {
	b, _ := sfv.AppendItem(nil, c.id)
	return string(b)
}

// ParseComponent parses a component identifier in its structured form
// (`"@query-param";name="Pet"`, `"content-digest"`) or its bare form
// (`@method`, `example-dict;key=a`, `@query-param;name=Pet`).
func ParseComponent(s string) (Component, error) {
	s = strings.TrimSpace(s)
	if s != "" && s[0] != '"' {
		name, params, _ := strings.Cut(s, ";")
		b, err := sfv.AppendValue(nil, sfv.String(name))
		if err != nil {
			return Component{}, fmt.Errorf("%w: component %q: %v", ErrMalformed, s, err)
		}
		if params != "" {
			b = append(b, ';')
			b = append(b, quoteBareParams(params)...)
		}
		s = string(b)
	}
	it, err := sfv.ParseItem(s)
	if err != nil {
		return Component{}, fmt.Errorf("%w: component %q: %v", ErrMalformed, s, err)
	}
	return componentFromItem(it)
}

// quoteBareParams turns `key=a;name=Pet` into `key="a";name="Pet"`: in the bare form,
// string-valued parameters may be written unquoted.
func quoteBareParams(params string) string {
	parts := strings.Split(params, ";")
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if ok && (k == "key" || k == "name") && !strings.HasPrefix(v, `"`) {
			parts[i] = k + `="` + v + `"`
		}
	}
	return strings.Join(parts, ";")
}

// componentFromItem validates a component identifier (RFC 9421 Section 2).
func componentFromItem(it sfv.Item) (Component, error) {
	c := Component{id: it}
	if it.Value.Kind != sfv.KindString || it.Value.Str == "" {
		return c, fmt.Errorf("%w: component identifier must be a non-empty string", ErrMalformed)
	}
	name := it.Value.Str
	if name[0] == '@' {
		k, ok := derivedNames[name]
		if !ok {
			return c, fmt.Errorf("%w: unsupported derived component %q", ErrMalformed, name)
		}
		c.kind, c.derived = k, true
	} else if !isFieldName(name) {
		return c, fmt.Errorf("%w: invalid field name %q (must be a lowercase token)", ErrMalformed, name)
	}
	for _, p := range it.Params {
		if err := c.setParam(p); err != nil {
			return c, err
		}
	}
	switch {
	case c.kind == dQueryParam && c.qparam == "" && !hasParam(it.Params, "name"):
		return c, fmt.Errorf("%w: @query-param needs a name parameter", ErrMalformed)
	case c.derived && (c.sf || c.bs || c.hasKey):
		return c, fmt.Errorf("%w: %s takes no sf, key or bs parameter", ErrMalformed, name)
	case c.bs && (c.sf || c.hasKey):
		return c, fmt.Errorf("%w: %s: bs cannot be combined with sf or key", ErrMalformed, name)
	}
	return c, nil
}

func (c *Component) setParam(p sfv.Param) error {
	flag := p.Value.Kind == sfv.KindBoolean && p.Value.Int == 1
	str := p.Value.Kind == sfv.KindString
	switch {
	case p.Key == "sf" && flag:
		c.sf = true
	case p.Key == "bs" && flag:
		c.bs = true
	case p.Key == "req" && flag:
		c.req = true
	case p.Key == "key" && str && !c.derived:
		c.hasKey, c.key = true, p.Value.Str
	case p.Key == "name" && str && c.kind == dQueryParam:
		name, err := formDecode(p.Value.Str)
		if err != nil {
			return fmt.Errorf("%w: @query-param name: %v", ErrMalformed, err)
		}
		c.qparam = name
	default:
		return fmt.Errorf("%w: component %q: unsupported parameter %q", ErrMalformed, c.Name(), p.Key)
	}
	return nil
}

func hasParam(ps sfv.Params, key string) bool {
	_, ok := ps.Get(key)
	return ok
}

// sameAs reports whether c and o identify the same component (same name and the same
// parameters, in any order).
func (c *Component) sameAs(o *Component) bool {
	return c.id.Value.Str == o.id.Value.Str && c.sf == o.sf && c.bs == o.bs && c.req == o.req &&
		c.hasKey == o.hasKey && c.key == o.key && c.qparam == o.qparam
}

// isFieldName reports whether s is a lowercase field name token (RFC 9110 tchars).
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
