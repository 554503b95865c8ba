// Package sfv parses and serializes HTTP Structured Field Values (RFC 8941): Items,
// Lists, Inner Lists, Parameters and Dictionaries.
//
// The parser is strict. It implements the parsing algorithms of RFC 8941 Section 4.2
// exactly, with one deliberate tightening: a Byte Sequence must be canonical base64
// (padding present, no trailing data, zero pad bits), because signature and digest
// values compared byte for byte must have exactly one encoding. Every parse function
// either returns a value whose serialization re-parses to the same value, or an error;
// none panics on any input.
//
// Parsed strings, tokens and keys are substrings of the input where possible, so a
// parse allocates only for the containers, escaped strings and decoded byte sequences.
package sfv

import (
	"errors"
	"fmt"
)

// Kind is the type of a bare item.
type Kind uint8

// The bare item types of RFC 8941 Section 3.3.
const (
	KindInvalid Kind = iota
	KindInteger
	KindDecimal
	KindString
	KindToken
	KindByteSequence
	KindBoolean
)

var kindNames = [...]string{"invalid", "integer", "decimal", "string", "token", "byte sequence", "boolean"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits from RFC 8941 Sections 3.3.1 and 3.3.2.
const (
	// MaxInteger is the largest magnitude of an Integer.
	MaxInteger = 999_999_999_999_999
	// maxDecimalMilli is the largest magnitude of a Decimal, in thousandths.
	maxDecimalMilli = 999_999_999_999_999
)

// Value is a bare item. The zero value is invalid and does not serialize.
type Value struct {
	Kind Kind
	// Int holds an Integer, a Decimal in thousandths (1.5 is 1500), or a Boolean as 0/1.
	Int int64
	// Str holds a String or a Token.
	Str string
	// Bytes holds a Byte Sequence.
	Bytes []byte
}

// Integer returns an Integer value.
func Integer(i int64) Value { return Value{Kind: KindInteger, Int: i} }

// DecimalMilli returns a Decimal value of milli/1000.
func DecimalMilli(milli int64) Value { return Value{Kind: KindDecimal, Int: milli} }

// String returns a String value.
func String(s string) Value { return Value{Kind: KindString, Str: s} }

// Token returns a Token value.
func Token(s string) Value { return Value{Kind: KindToken, Str: s} }

// ByteSequence returns a Byte Sequence value.
func ByteSequence(b []byte) Value { return Value{Kind: KindByteSequence, Bytes: b} }

// Boolean returns a Boolean value.
func Boolean(b bool) Value {
	v := Value{Kind: KindBoolean}
	if b {
		v.Int = 1
	}
	return v
}

// Bool reports the value of a Boolean (false for any other kind).
func (v Value) Bool() bool { return v.Kind == KindBoolean && v.Int == 1 }

// Equal reports whether v and w are the same bare item.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind || v.Int != w.Int || v.Str != w.Str {
		return false
	}
	return string(v.Bytes) == string(w.Bytes)
}

// Param is one parameter: a key and a bare item.
type Param struct {
	Key   string
	Value Value
}

// Params are ordered parameters with unique keys.
type Params []Param

// Get returns the value of the parameter key and whether it is present.
func (ps Params) Get(key string) (Value, bool) {
	for i := range ps {
		if ps[i].Key == key {
			return ps[i].Value, true
		}
	}
	return Value{}, false
}

// Item is a bare item with parameters.
type Item struct {
	Value  Value
	Params Params
}

// Member is a member of a List or a Dictionary: an Item, or an Inner List when
// IsInnerList is set. For an Inner List, Items holds its members and Params its
// parameters; for an Item, Value and Params.
type Member struct {
	IsInnerList bool
	Value       Value
	Items       []Item
	Params      Params
}

// Item returns the member as an Item (meaningful only when !IsInnerList).
func (m *Member) Item() Item { return Item{Value: m.Value, Params: m.Params} }

// List is a parsed List.
type List []Member

// DictMember is one key and member of a Dictionary.
type DictMember struct {
	Key string
	Member
}

// Dictionary is an ordered map of keys to members. Keys are unique: on parsing, a
// repeated key overwrites the earlier value in place (RFC 8941 Section 4.2.2).
type Dictionary []DictMember

// Get returns the member for key and whether it is present.
func (d Dictionary) Get(key string) (*Member, bool) {
	for i := range d {
		if d[i].Key == key {
			return &d[i].Member, true
		}
	}
	return nil, false
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("structured field syntax error")

// ErrSerialize is wrapped by every serialization error (a value outside the data model).
var ErrSerialize = errors.New("structured field value not serializable")

// SyntaxError reports where a parse failed.
type SyntaxError struct {
	Offset int    // byte offset in the input
	Msg    string // what was expected
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("structured field syntax error at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Type is a structured field's top-level type, needed to re-serialize a field whose
// definition is known (RFC 9421 `sf` parameter).
type Type uint8

// The top-level types.
const (
	TypeUnknown Type = iota
	TypeItem
	TypeList
	TypeDictionary
)
