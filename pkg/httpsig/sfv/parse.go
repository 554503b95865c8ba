package sfv

import (
	"encoding/base64"
	"strings"
)

// strictBase64 rejects missing padding, data after padding and non-zero pad bits.
var strictBase64 = base64.StdEncoding.Strict()

// ParseItem parses a field value as an Item (RFC 8941 Section 4.2, item).
func ParseItem(s string) (Item, error) {
	p := parser{s: s}
	p.skipSP()
	it, err := p.item()
	if err != nil {
		return Item{}, err
	}
	if err := p.end(); err != nil {
		return Item{}, err
	}
	return it, nil
}

// ParseList parses a field value as a List. An empty value is an empty List.
func ParseList(s string) (List, error) {
	p := parser{s: s}
	p.skipSP()
	var l List
	for p.i < len(p.s) {
		m, err := p.member()
		if err != nil {
			return nil, err
		}
		l = append(l, m)
		if done, err := p.nextMember(); err != nil || done {
			return l, err
		}
	}
	return l, nil
}

// ParseDictionary parses a field value as a Dictionary. An empty value is an empty
// Dictionary. A repeated key overwrites the earlier member in place.
func ParseDictionary(s string) (Dictionary, error) {
	p := parser{s: s}
	p.skipSP()
	var d Dictionary
	for p.i < len(p.s) {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var m Member
		if p.peek() == '=' {
			p.i++
			if m, err = p.member(); err != nil {
				return nil, err
			}
		} else {
			m.Value = Boolean(true)
			if m.Params, err = p.params(); err != nil {
				return nil, err
			}
		}
		d = d.set(key, m)
		if done, err := p.nextMember(); err != nil || done {
			return d, err
		}
	}
	return d, nil
}

// Parse parses s as a field of type t.
func Parse(s string, t Type) (any, error) {
	switch t {
	case TypeItem:
		return ParseItem(s)
	case TypeList:
		return ParseList(s)
	case TypeDictionary:
		return ParseDictionary(s)
	}
	return nil, &SyntaxError{Msg: "unknown field type"}
}

func (d Dictionary) set(key string, m Member) Dictionary {
	for i := range d {
		if d[i].Key == key {
			d[i].Member = m
			return d
		}
	}
	if d == nil {
		d = make(Dictionary, 0, 2)
	}
	return append(d, DictMember{Key: key, Member: m})
}

type parser struct {
	s string
	i int
}

func (p *parser) fail(msg string) error { return &SyntaxError{Offset: p.i, Msg: msg} }

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *parser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *parser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// end discards trailing SP and fails unless the input is consumed.
func (p *parser) end() error {
	p.skipSP()
	if p.i != len(p.s) {
		return p.fail("unexpected trailing characters")
	}
	return nil
}

// nextMember consumes the separator after a List or Dictionary member. It reports
// done at the end of input and fails on a trailing comma.
func (p *parser) nextMember() (done bool, err error) {
	p.skipOWS()
	if p.i == len(p.s) {
		return true, nil
	}
	if p.s[p.i] != ',' {
		return false, p.fail("expected ','")
	}
	p.i++
	p.skipOWS()
	if p.i == len(p.s) {
		return false, p.fail("trailing ','")
	}
	return false, nil
}

// member parses an Item or an Inner List.
func (p *parser) member() (Member, error) {
	if p.peek() == '(' {
		return p.innerList()
	}
	it, err := p.item()
	return Member{Value: it.Value, Params: it.Params}, err
}

func (p *parser) innerList() (Member, error) {
	p.i++ // '('
	m := Member{IsInnerList: true}
	for p.i < len(p.s) {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			var err error
			m.Params, err = p.params()
			return m, err
		}
		it, err := p.item()
		if err != nil {
			return Member{}, err
		}
		if m.Items == nil {
			m.Items = make([]Item, 0, 8)
		}
		m.Items = append(m.Items, it)
		if c := p.peek(); c != ' ' && c != ')' {
			return Member{}, p.fail("expected ' ' or ')' in inner list")
		}
	}
	return Member{}, p.fail("unterminated inner list")
}

func (p *parser) item() (Item, error) {
	v, err := p.bareItem()
	if err != nil {
		return Item{}, err
	}
	ps, err := p.params()
	return Item{Value: v, Params: ps}, err
}

func (p *parser) params() (Params, error) {
	var ps Params
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		v := Boolean(true)
		if p.peek() == '=' {
			p.i++
			if v, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		ps = ps.set(key, v)
	}
	return ps, nil
}

func (ps Params) set(key string, v Value) Params {
	for i := range ps {
		if ps[i].Key == key {
			ps[i].Value = v
			return ps
		}
	}
	if ps == nil {
		ps = make(Params, 0, 4) // one allocation for typical parameter counts
	}
	return append(ps, Param{Key: key, Value: v})
}

func (p *parser) key() (string, error) {
	c := p.peek()
	if !isLCAlpha(c) && c != '*' {
		return "", p.fail("expected key")
	}
	start := p.i
	for p.i < len(p.s) && isKeyChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *parser) bareItem() (Value, error) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		return p.token(), nil
	case c == ':':
		return p.byteSequence()
	case c == '?':
		return p.boolean()
	}
	return Value{}, p.fail("expected bare item")
}

func (p *parser) number() (Value, error) {
	neg := false
	if p.peek() == '-' {
		neg = true
		p.i++
	}
	if !isDigit(p.peek()) {
		return Value{}, p.fail("expected digit")
	}
	start, dot := p.i, -1
	for ; p.i < len(p.s); p.i++ {
		c := p.s[p.i]
		if c == '.' && dot < 0 {
			if p.i-start > 12 {
				return Value{}, p.fail("decimal integer part too long")
			}
			dot = p.i
			continue
		}
		if !isDigit(c) {
			break
		}
		if (dot < 0 && p.i-start >= 15) || (dot >= 0 && p.i-start >= 16) {
			return Value{}, p.fail("number too long")
		}
	}
	if dot < 0 {
		n := digits(p.s[start:p.i])
		if neg {
			n = -n
		}
		return Integer(n), nil
	}
	frac := p.s[dot+1 : p.i]
	if len(frac) == 0 || len(frac) > 3 {
		return Value{}, p.fail("decimal needs 1 to 3 fractional digits")
	}
	n := digits(p.s[start:dot]) * 1000
	f := digits(frac)
	for k := len(frac); k < 3; k++ {
		f *= 10
	}
	n += f
	if neg {
		n = -n
	}
	return DecimalMilli(n), nil
}

// digits converts a string of at most 15 ASCII digits.
func digits(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

func (p *parser) str() (Value, error) {
	p.i++ // '"'
	start := p.i
	var b *strings.Builder // allocated only for escapes
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if b == nil {
				return String(p.s[start : p.i-1]), nil
			}
			return String(b.String()), nil
		case c == '\\':
			if p.i+1 >= len(p.s) || (p.s[p.i+1] != '"' && p.s[p.i+1] != '\\') {
				return Value{}, p.fail("invalid escape in string")
			}
			if b == nil {
				b = &strings.Builder{}
				b.WriteString(p.s[start:p.i])
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
			continue
		case c < 0x20 || c > 0x7e:
			return Value{}, p.fail("invalid character in string")
		}
		if b != nil {
			b.WriteByte(c)
		}
		p.i++
	}
	return Value{}, p.fail("unterminated string")
}

func (p *parser) token() Value {
	start := p.i
	p.i++ // '*' or ALPHA, checked by the caller
	for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return Token(p.s[start:p.i])
}

func (p *parser) byteSequence() (Value, error) {
	p.i++ // ':'
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return Value{}, p.fail("unterminated byte sequence")
	}
	enc := p.s[p.i : p.i+end]
	for i := 0; i < len(enc); i++ {
		if !isBase64Char(enc[i]) {
			p.i += i
			return Value{}, p.fail("invalid character in byte sequence")
		}
	}
	b := make([]byte, strictBase64.DecodedLen(len(enc)))
	n, err := strictBase64.Decode(b, []byte(enc))
	if err != nil {
		return Value{}, p.fail("byte sequence is not canonical base64")
	}
	p.i += end + 1
	return ByteSequence(b[:n]), nil
}

func (p *parser) boolean() (Value, error) {
	p.i++ // '?'
	switch p.peek() {
	case '1':
		p.i++
		return Boolean(true), nil
	case '0':
		p.i++
		return Boolean(false), nil
	}
	return Value{}, p.fail("expected ?0 or ?1")
}

func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }

func isKeyChar(c byte) bool {
	return isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'
}

func isBase64Char(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '='
}

// isTChar reports whether c is a tchar (RFC 9110 Section 5.6.2).
func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
