package sfv

import (
	"errors"
	"reflect"
	"testing"
)

// serializeOf parses s as t and returns the canonical serialization.
func serializeOf(t *testing.T, s string, typ Type) (string, error) {
	t.Helper()
	v, err := Parse(s, typ)
	if err != nil {
		return "", err
	}
	b, err := Append(nil, v)
	if err != nil {
		t.Fatalf("parsed value %q does not serialize: %v", s, err)
	}
	return string(b), nil
}

func TestParseCanonical(t *testing.T) {
	tests := []struct {
		name string
		typ  Type
		in   string
		want string // canonical serialization; "" with fail
		fail bool
	}{
		{"integer", TypeItem, "42", "42", false},
		{"negative integer", TypeItem, "-42", "-42", false},
		{"leading zeros", TypeItem, "0002", "2", false},
		{"max integer", TypeItem, "999999999999999", "999999999999999", false},
		{"integer too long", TypeItem, "1000000000000000", "", true},
		{"minus only", TypeItem, "-", "", true},
		{"decimal", TypeItem, "1.5", "1.5", false},
		{"decimal trailing zeros", TypeItem, "1.500", "1.5", false},
		{"decimal zero", TypeItem, "-0.0", "0.0", false},
		{"negative decimal", TypeItem, "-0.25", "-0.25", false},
		{"decimal 4 frac digits", TypeItem, "1.2345", "", true},
		{"decimal no frac", TypeItem, "1.", "", true},
		{"decimal int part 13", TypeItem, "1234567890123.0", "", true},
		{"decimal max", TypeItem, "123456789012.123", "123456789012.123", false},
		{"two dots", TypeItem, "1.2.3", "", true},
		{"string", TypeItem, `"hello world"`, `"hello world"`, false},
		{"string escapes", TypeItem, `"a\"b\\c"`, `"a\"b\\c"`, false},
		{"string bad escape", TypeItem, `"a\nb"`, "", true},
		{"string unterminated", TypeItem, `"abc`, "", true},
		{"string control char", TypeItem, "\"a\tb\"", "", true},
		{"string non-ascii", TypeItem, "\"caf\xc3\xa9\"", "", true},
		{"token", TypeItem, "foo123/456:bar", "foo123/456:bar", false},
		{"token star", TypeItem, "*foo", "*foo", false},
		{"token bad start", TypeItem, "/foo", "", true},
		{"byte sequence", TypeItem, ":aGVsbG8=:", ":aGVsbG8=:", false},
		{"empty byte sequence", TypeItem, "::", "::", false},
		{"byte sequence no padding", TypeItem, ":aGVsbG8:", "", true},
		{"byte sequence extra padding", TypeItem, ":RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg==:", "", true},
		{"byte sequence nonzero pad bits", TypeItem, ":aGVsbG9=:", "", true},
		{"byte sequence base64url", TypeItem, ":aGV-bG8=:", "", true},
		{"byte sequence unterminated", TypeItem, ":aGVsbG8=", "", true},
		{"boolean true", TypeItem, "?1", "?1", false},
		{"boolean false", TypeItem, "?0", "?0", false},
		{"boolean bad", TypeItem, "?2", "", true},
		{"item params", TypeItem, `text/html;charset=utf-8;q=0.5;x`, `text/html;charset=utf-8;q=0.5;x`, false},
		{"param space after ;", TypeItem, `a; b=1`, `a;b=1`, false},
		{"param duplicate overwrites", TypeItem, `a;b=1;c=2;b=3`, `a;b=3;c=2`, false},
		{"param uppercase key", TypeItem, `a;B=1`, "", true},
		{"param false boolean", TypeItem, `a;b=?0`, `a;b=?0`, false},
		{"leading and trailing SP", TypeItem, "  1  ", "1", false},
		{"trailing garbage", TypeItem, "1 2", "", true},
		{"tab not allowed at top", TypeItem, "\t1", "", true},
		{"empty item", TypeItem, "", "", true},
		{"list", TypeList, "a, b,c", "a, b, c", false},
		{"list OWS tabs", TypeList, "a\t,\tb", "a, b", false},
		{"list trailing comma", TypeList, "a, b,", "", true},
		{"list empty", TypeList, "", "", false},
		{"list inner lists", TypeList, `("a" "b");p=1, ()`, `("a" "b");p=1, ()`, false},
		{"inner list extra spaces", TypeList, `(  1   2  )`, `(1 2)`, false},
		{"inner list no separator", TypeList, `(1"a")`, "", true},
		{"inner list unterminated", TypeList, `(1 2`, "", true},
		{"inner list item params", TypeList, `(a;x b;y=?0);z`, `(a;x b;y=?0);z`, false},
		{"dictionary", TypeDictionary, `a=1, b=2;x=1, c`, `a=1, b=2;x=1, c`, false},
		{"dictionary true with params", TypeDictionary, `a;x=1`, `a;x=1`, false},
		{"dictionary explicit true", TypeDictionary, `a=?1`, `a`, false},
		{"dictionary duplicate key", TypeDictionary, `a=1, b=2, a=3`, `a=3, b=2`, false},
		{"dictionary inner list", TypeDictionary, `sig1=("@method" "@path");created=1`, `sig1=("@method" "@path");created=1`, false},
		{"dictionary bad key", TypeDictionary, `A=1`, "", true},
		{"dictionary trailing comma", TypeDictionary, `a=1,`, "", true},
		{"dictionary missing comma", TypeDictionary, `a=1 b=2`, "", true},
		{"dictionary empty value", TypeDictionary, `a=`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serializeOf(t, tt.in, tt.typ)
			if tt.fail {
				if err == nil {
					t.Fatalf("parse %q: want error, got %q", tt.in, got)
				}
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("error %v does not wrap ErrSyntax", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse %q: %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("serialize(parse(%q)) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsedValues(t *testing.T) {
	d, err := ParseDictionary(`sig=:AQID:, n=-1.5, s="x", t=tok, b=?0`)
	if err != nil {
		t.Fatal(err)
	}
	want := Dictionary{
		{Key: "sig", Member: Member{Value: ByteSequence([]byte{1, 2, 3})}},
		{Key: "n", Member: Member{Value: DecimalMilli(-1500)}},
		{Key: "s", Member: Member{Value: String("x")}},
		{Key: "t", Member: Member{Value: Token("tok")}},
		{Key: "b", Member: Member{Value: Boolean(false)}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
	if m, ok := d.Get("t"); !ok || m.Value.Str != "tok" {
		t.Fatalf("Get(t) = %+v, %v", m, ok)
	}
	if _, ok := d.Get("zz"); ok {
		t.Fatal("Get of a missing key found something")
	}
}

func TestSerializeRejectsOutOfModel(t *testing.T) {
	bad := []Value{
		{},
		Integer(MaxInteger + 1),
		DecimalMilli(maxDecimalMilli + 1),
		String("é"),
		String("a\nb"),
		Token("1abc"),
		Token(""),
		Token("a b"),
	}
	for _, v := range bad {
		if _, err := AppendValue(nil, v); !errors.Is(err, ErrSerialize) {
			t.Errorf("AppendValue(%+v) error = %v, want ErrSerialize", v, err)
		}
	}
	if _, err := AppendParams(nil, Params{{Key: "Bad", Value: Integer(1)}}); err == nil {
		t.Error("uppercase parameter key serialized")
	}
	if _, err := AppendDictionary(nil, Dictionary{{Key: "", Member: Member{Value: Integer(1)}}}); err == nil {
		t.Error("empty dictionary key serialized")
	}
}

// checkRoundTrip asserts that a parsed value serializes, that the serialization
// parses to an equal value, and that serialization is a fixed point.
func checkRoundTrip(t *testing.T, in string, typ Type) {
	v, err := Parse(in, typ)
	if err != nil {
		return
	}
	out, err := Append(nil, v)
	if err != nil {
		t.Fatalf("parsed %q but cannot serialize: %v", in, err)
	}
	v2, err := Parse(string(out), typ)
	if err != nil {
		t.Fatalf("serialization %q of %q does not parse: %v", out, in, err)
	}
	out2, _ := Append(nil, v2)
	if string(out) != string(out2) {
		t.Fatalf("serialization not stable: %q -> %q -> %q", in, out, out2)
	}
}

var fuzzSeeds = []string{
	`sig1=("@method" "@target-uri" "content-digest");created=1618884473;keyid="k1";nonce="abc"`,
	`sig1=:cHhjUXc2RzNBanRNQlFqd284WHprWmYvYndzNUxlbGJhTWs1ckdJR3RFOD0=:`,
	`a=1, b=2;x=?0, c, d=(1 2.5 "s" tok :AA==:);p`,
	`sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg==:`,
	`("a" "b")`, `1.123`, `-999999999999999`, `"\\\""`, `*tok/x:y`, `?1;a;b=?0`,
	"", " ", ",", "a=", "(", `"`, ":", "?", "a;", "a=1,,b=2", "a=\t1",
}

func FuzzParseDictionary(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { checkRoundTrip(t, in, TypeDictionary) })
}

func FuzzParseList(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { checkRoundTrip(t, in, TypeList) })
}

func FuzzParseItem(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { checkRoundTrip(t, in, TypeItem) })
}
