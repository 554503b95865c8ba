package jwt

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The JOSE header and the claims are decoded by this strict RFC 8259 parser instead of
// encoding/json, which accepts duplicate object keys (the last one wins), replaces
// invalid UTF-8 and lone surrogates silently, and decodes through reflection. Two
// parsers that disagree on which "alg" or "sub" a token carries are an attack surface,
// so anything ambiguous is an error here.

// maxJSONDepth bounds nesting so a hostile payload cannot exhaust the stack.
const maxJSONDepth = 32

var (
	errJSONSyntax    = errors.New("invalid JSON")
	errJSONDuplicate = errors.New("duplicate JSON object key")
	errJSONDepth     = errors.New("JSON nested too deeply")
	errJSONUTF8      = errors.New("invalid UTF-8 in JSON string")
	errJSONNotObject = errors.New("JSON value is not an object")
)

// jsonParser decodes one JSON text into map[string]any, []any, string, float64, bool
// and nil, the same shapes encoding/json produces for an `any`.
type jsonParser struct {
	b     []byte
	i     int
	depth int
}

// parseJSONObject decodes b, which must hold exactly one JSON object.
func parseJSONObject(b []byte) (map[string]any, error) {
	p := jsonParser{b: b}
	p.space()
	if p.i >= len(b) || b[p.i] != '{' {
		return nil, errJSONNotObject
	}
	m, err := p.object()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(b) {
		return nil, errJSONSyntax
	}
	return m, nil
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, error) {
	p.space()
	if p.i >= len(p.b) {
		return nil, errJSONSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, errJSONSyntax
}

func (p *jsonParser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return errJSONSyntax
	}
	p.i += len(lit)
	return nil
}

func (p *jsonParser) object() (map[string]any, error) {
	if p.depth++; p.depth > maxJSONDepth {
		return nil, errJSONDepth
	}
	p.i++ // '{'
	m := make(map[string]any, 8)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return m, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, errJSONSyntax
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, errJSONDuplicate
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errJSONSyntax
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.space()
		if p.i >= len(p.b) {
			return nil, errJSONSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			p.depth--
			return m, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

func (p *jsonParser) array() ([]any, error) {
	if p.depth++; p.depth > maxJSONDepth {
		return nil, errJSONDepth
	}
	p.i++ // '['
	var a []any
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return []any{}, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.i >= len(p.b) {
			return nil, errJSONSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.depth--
			return a, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

// str decodes a string starting at the opening quote.
func (p *jsonParser) str() (string, error) {
	p.i++ // '"'
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", errJSONUTF8
			}
			return string(s), nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return "", errJSONSyntax
		}
		p.i++
	}
	return "", errJSONSyntax
}

// strEscaped continues a string that contains escapes, from its first escape.
func (p *jsonParser) strEscaped(start int) (string, error) {
	if !utf8.Valid(p.b[start:p.i]) {
		return "", errJSONUTF8
	}
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", errJSONSyntax
		case c == '\\':
			var err error
			if out, err = p.escape(out); err != nil {
				return "", err
			}
		default:
			j := p.i
			for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 {
				j++
			}
			if !utf8.Valid(p.b[p.i:j]) {
				return "", errJSONUTF8
			}
			out = append(out, p.b[p.i:j]...)
			p.i = j
		}
	}
	return "", errJSONSyntax
}

// escape decodes one escape sequence at p.i (the backslash) and appends it to out.
func (p *jsonParser) escape(out []byte) ([]byte, error) {
	if p.i+1 >= len(p.b) {
		return nil, errJSONSyntax
	}
	c := p.b[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return append(out, c), nil
	case 'b':
		return append(out, '\b'), nil
	case 'f':
		return append(out, '\f'), nil
	case 'n':
		return append(out, '\n'), nil
	case 'r':
		return append(out, '\r'), nil
	case 't':
		return append(out, '\t'), nil
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return nil, errJSONSyntax
		}
		if utf16.IsSurrogate(r) {
			// A high surrogate must be followed by an escaped low surrogate.
			if p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
				return nil, errJSONUTF8
			}
			p.i += 2
			r2, ok := p.hex4()
			if !ok {
				return nil, errJSONSyntax
			}
			if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
				return nil, errJSONUTF8
			}
		}
		return utf8.AppendRune(out, r), nil
	}
	return nil, errJSONSyntax
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	p.i += 4
	return r, true
}

// number decodes a number following the RFC 8259 grammar exactly.
func (p *jsonParser) number() (float64, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return 0, errJSONSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return 0, errJSONSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return 0, errJSONSyntax
		}
	}
	f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	if err != nil {
		return 0, errJSONSyntax // out of range
	}
	return f, nil
}

func (p *jsonParser) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}
