package httpsig

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// KnownStructuredFields maps lowercase field names to their structured type, for the
// `sf` parameter. Options may add more (Policy.StructuredFields,
// SignerOptions.StructuredFields).
var knownStructuredFields = map[string]sfv.Type{
	"accept-signature":    sfv.TypeDictionary,
	"signature-input":     sfv.TypeDictionary,
	"signature":           sfv.TypeDictionary,
	"content-digest":      sfv.TypeDictionary,
	"repr-digest":         sfv.TypeDictionary,
	"want-content-digest": sfv.TypeDictionary,
	"want-repr-digest":    sfv.TypeDictionary,
	"priority":            sfv.TypeDictionary,
	"cdn-cache-control":   sfv.TypeDictionary,
	"cache-status":        sfv.TypeList,
	"proxy-status":        sfv.TypeList,
	"client-cert":         sfv.TypeItem,
	"client-cert-chain":   sfv.TypeList,
}

// maxComponents bounds the covered components of one signature.
const maxComponents = 64

// SignatureBase returns the signature base (RFC 9421 Section 2.5) of m for the
// covered components and signature parameters. fieldTypes adds structured field
// types for `sf` beyond the built-in ones (may be nil).
func SignatureBase(m *Message, components []Component, params sfv.Params, fieldTypes map[string]sfv.Type) ([]byte, error) {
	return appendBase(nil, m, components, params, fieldTypes)
}

// appendBase appends the signature base to b.
func appendBase(b []byte, m *Message, comps []Component, params sfv.Params, types map[string]sfv.Type) ([]byte, error) {
	if len(comps) > maxComponents {
		return b, fmt.Errorf("%w: more than %d covered components", ErrMalformed, maxComponents)
	}
	var err error
	for i := range comps {
		c := &comps[i]
		for j := 0; j < i; j++ {
			if comps[j].sameAs(c) {
				return b, fmt.Errorf("%w: component %q covered twice", ErrMalformed, c.Name())
			}
		}
		if b, err = sfv.AppendItem(b, c.id); err != nil {
			return b, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		b = append(b, ": "...)
		if b, err = appendComponentValue(b, m, c, types); err != nil {
			return b, err
		}
		b = append(b, '\n')
	}
	b = append(b, `"@signature-params": `...)
	return appendSignatureParams(b, comps, params)
}

// appendSignatureParams appends the @signature-params value: the inner list of
// component identifiers with the signature parameters.
func appendSignatureParams(b []byte, comps []Component, params sfv.Params) ([]byte, error) {
	var err error
	b = append(b, '(')
	for i := range comps {
		if i > 0 {
			b = append(b, ' ')
		}
		if b, err = sfv.AppendItem(b, comps[i].id); err != nil {
			return b, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	b = append(b, ')')
	if b, err = sfv.AppendParams(b, params); err != nil {
		return b, fmt.Errorf("%w: signature parameters: %v", ErrMalformed, err)
	}
	return b, nil
}

// appendComponentValue appends the value of one component of m.
func appendComponentValue(b []byte, m *Message, c *Component, types map[string]sfv.Type) ([]byte, error) {
	if c.req {
		if m.Status == 0 {
			return b, fmt.Errorf("%w: %q: req applies to responses only", ErrMalformed, c.Name())
		}
		if m.Request == nil {
			return b, fmt.Errorf("%w: %q: the related request is not available", ErrMissingComponent, c.Name())
		}
		m = m.Request
	}
	if !c.derived {
		return appendField(b, m, c, types)
	}
	if c.kind == dStatus {
		if m.Status < 100 || m.Status > 999 {
			return b, fmt.Errorf("%w: @status: not a response", ErrMissingComponent)
		}
		return strconv.AppendInt(b, int64(m.Status), 10), nil
	}
	if m.Status != 0 {
		return b, fmt.Errorf("%w: %s: not available in a response", ErrMissingComponent, c.Name())
	}
	return appendDerived(b, m, c)
}

func appendDerived(b []byte, m *Message, c *Component) ([]byte, error) {
	switch c.kind {
	case dMethod:
		return appendPlain(b, m.Method, c)
	case dTargetURI:
		b = appendLower(b, m.Scheme)
		b = append(b, "://"...)
		b = appendAuthority(b, m.Scheme, m.Authority)
		return appendRequestTarget(b, m, c)
	case dAuthority:
		return appendAuthority(b, m.Scheme, m.Authority), nil
	case dScheme:
		return appendLower(b, m.Scheme), nil
	case dRequestTarget:
		return appendRequestTarget(b, m, c)
	case dPath:
		if m.RawPath == "" {
			return append(b, '/'), nil
		}
		return appendPlain(b, m.RawPath, c)
	case dQuery:
		b = append(b, '?')
		return appendPlain(b, m.RawQuery, c)
	case dQueryParam:
		return appendQueryParam(b, m.RawQuery, c.qparam)
	}
	return b, fmt.Errorf("%w: unsupported component %q", ErrMalformed, c.Name())
}

func appendRequestTarget(b []byte, m *Message, c *Component) ([]byte, error) {
	if m.RawPath == "" {
		b = append(b, '/')
	} else {
		var err error
		if b, err = appendPlain(b, m.RawPath, c); err != nil {
			return b, err
		}
	}
	if m.RawQuery == "" {
		return b, nil
	}
	b = append(b, '?')
	return appendPlain(b, m.RawQuery, c)
}

// appendAuthority appends the authority normalized per RFC 9110 Section 4.2.3:
// lowercase host, default port for the scheme omitted.
func appendAuthority(b []byte, scheme, authority string) []byte {
	switch {
	case strings.EqualFold(scheme, "https") && strings.HasSuffix(authority, ":443"):
		authority = authority[:len(authority)-4]
	case strings.EqualFold(scheme, "http") && strings.HasSuffix(authority, ":80"):
		authority = authority[:len(authority)-3]
	}
	return appendLower(b, authority)
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// appendPlain appends a value that must not contain line breaks or NUL, which would
// make the signature base ambiguous.
func appendPlain(b []byte, s string, c *Component) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' || s[i] == 0 {
			return b, fmt.Errorf("%w: %q: value contains a line break or NUL", ErrMalformed, c.Name())
		}
	}
	return append(b, s...), nil
}

// appendField appends the value of an HTTP field component (RFC 9421 Section 2.1).
func appendField(b []byte, m *Message, c *Component, types map[string]sfv.Type) ([]byte, error) {
	lines, ok := fieldLines(m.Header, c.Name())
	if !ok || len(lines) == 0 {
		return b, fmt.Errorf("%w: field %q absent", ErrMissingComponent, c.Name())
	}
	var err error
	switch {
	case c.bs:
		for i, l := range lines {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, ':')
			b = base64.StdEncoding.AppendEncode(b, []byte(trimOWS(l)))
			b = append(b, ':')
		}
		return b, nil
	case c.hasKey || c.sf:
		return appendStructured(b, m, c, types)
	}
	for i, l := range lines {
		if i > 0 {
			b = append(b, ", "...)
		}
		if b, err = appendPlain(b, trimOWS(l), c); err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendStructured appends the re-serialized value of a structured field, or of one
// member of a dictionary field (`key`).
func appendStructured(b []byte, m *Message, c *Component, types map[string]sfv.Type) ([]byte, error) {
	value, _ := fieldValue(m.Header, c.Name())
	if c.hasKey {
		d, err := sfv.ParseDictionary(value)
		if err != nil {
			return b, fmt.Errorf("%w: field %q: %v", ErrMalformed, c.Name(), err)
		}
		member, ok := d.Get(c.key)
		if !ok {
			return b, fmt.Errorf("%w: field %q has no member %q", ErrMissingComponent, c.Name(), c.key)
		}
		return sfv.AppendMember(b, member)
	}
	t, ok := types[c.Name()]
	if !ok {
		t, ok = knownStructuredFields[c.Name()]
	}
	if !ok {
		return b, fmt.Errorf("%w: field %q: structured type unknown", ErrMalformed, c.Name())
	}
	v, err := sfv.Parse(value, t)
	if err != nil {
		return b, fmt.Errorf("%w: field %q: %v", ErrMalformed, c.Name(), err)
	}
	return sfv.Append(b, v)
}
