package sfv

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// AppendValue appends the serialization of a bare item (RFC 8941 Section 4.1.3).
func AppendValue(b []byte, v Value) ([]byte, error) {
	switch v.Kind {
	case KindInteger:
		if v.Int > MaxInteger || v.Int < -MaxInteger {
			return b, fmt.Errorf("%w: integer out of range", ErrSerialize)
		}
		return strconv.AppendInt(b, v.Int, 10), nil
	case KindDecimal:
		return appendDecimal(b, v.Int)
	case KindString:
		return appendString(b, v.Str)
	case KindToken:
		if !IsToken(v.Str) {
			return b, fmt.Errorf("%w: invalid token %q", ErrSerialize, v.Str)
		}
		return append(b, v.Str...), nil
	case KindByteSequence:
		b = append(b, ':')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes)
		return append(b, ':'), nil
	case KindBoolean:
		if v.Int == 1 {
			return append(b, "?1"...), nil
		}
		return append(b, "?0"...), nil
	}
	return b, fmt.Errorf("%w: invalid bare item", ErrSerialize)
}

func appendDecimal(b []byte, milli int64) ([]byte, error) {
	if milli > maxDecimalMilli || milli < -maxDecimalMilli {
		return b, fmt.Errorf("%w: decimal out of range", ErrSerialize)
	}
	if milli < 0 {
		b = append(b, '-')
		milli = -milli
	}
	b = strconv.AppendInt(b, milli/1000, 10)
	b = append(b, '.')
	frac := milli % 1000
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	return append(b, digits[:n]...), nil
}

func appendString(b []byte, s string) ([]byte, error) {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return b, fmt.Errorf("%w: invalid character in string", ErrSerialize)
		}
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"'), nil
}

// IsToken reports whether s is a valid Token.
func IsToken(s string) bool {
	if s == "" || (s[0] != '*' && !isAlpha(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isTChar(c) && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

// IsKey reports whether s is a valid parameter or dictionary key.
func IsKey(s string) bool {
	if s == "" || (s[0] != '*' && !isLCAlpha(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isKeyChar(s[i]) {
			return false
		}
	}
	return true
}

// AppendParams appends the serialization of parameters.
func AppendParams(b []byte, ps Params) ([]byte, error) {
	var err error
	for _, p := range ps {
		if !IsKey(p.Key) {
			return b, fmt.Errorf("%w: invalid key %q", ErrSerialize, p.Key)
		}
		b = append(b, ';')
		b = append(b, p.Key...)
		if p.Value.Kind == KindBoolean && p.Value.Int == 1 {
			continue
		}
		b = append(b, '=')
		if b, err = AppendValue(b, p.Value); err != nil {
			return b, err
		}
	}
	return b, nil
}

// AppendItem appends the serialization of an Item.
func AppendItem(b []byte, it Item) ([]byte, error) {
	b, err := AppendValue(b, it.Value)
	if err != nil {
		return b, err
	}
	return AppendParams(b, it.Params)
}

// AppendMember appends the serialization of an Item or Inner List.
func AppendMember(b []byte, m *Member) ([]byte, error) {
	if !m.IsInnerList {
		return AppendItem(b, m.Item())
	}
	return AppendInnerList(b, m.Items, m.Params)
}

// AppendInnerList appends the serialization of an Inner List.
func AppendInnerList(b []byte, items []Item, ps Params) ([]byte, error) {
	var err error
	b = append(b, '(')
	for i, it := range items {
		if i > 0 {
			b = append(b, ' ')
		}
		if b, err = AppendItem(b, it); err != nil {
			return b, err
		}
	}
	b = append(b, ')')
	return AppendParams(b, ps)
}

// AppendList appends the serialization of a List.
func AppendList(b []byte, l List) ([]byte, error) {
	var err error
	for i := range l {
		if i > 0 {
			b = append(b, ", "...)
		}
		if b, err = AppendMember(b, &l[i]); err != nil {
			return b, err
		}
	}
	return b, nil
}

// AppendDictionary appends the serialization of a Dictionary.
func AppendDictionary(b []byte, d Dictionary) ([]byte, error) {
	var err error
	for i := range d {
		if i > 0 {
			b = append(b, ", "...)
		}
		m := &d[i]
		if !IsKey(m.Key) {
			return b, fmt.Errorf("%w: invalid key %q", ErrSerialize, m.Key)
		}
		b = append(b, m.Key...)
		if !m.IsInnerList && m.Value.Kind == KindBoolean && m.Value.Int == 1 {
			b, err = AppendParams(b, m.Params)
		} else {
			b = append(b, '=')
			b, err = AppendMember(b, &m.Member)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// Append appends the serialization of v, which must be an Item, List or Dictionary.
func Append(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case Item:
		return AppendItem(b, x)
	case List:
		return AppendList(b, x)
	case Dictionary:
		return AppendDictionary(b, x)
	}
	return b, fmt.Errorf("%w: %T is not a structured field", ErrSerialize, v)
}
