package jwt

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

func TestParseJSONObject(t *testing.T) {
	ok := []string{
		`{}`, ` {"a":1} `, `{"a":[1,2,{"b":null}],"c":true,"d":false,"e":-1.5e3}`,
		`{"s":"\u00e9\ud83d\ude00\n\"\\\/"}`, `{"a":{},"b":[]}`, "{\"k\":\"caf\xc3\xa9\"}",
		`{"a":0,"b":-0,"c":0.5,"d":1E+2}`,
	}
	for _, s := range ok {
		got, err := parseJSONObject([]byte(s))
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v want %v", s, got, want)
		}
	}
	bad := map[string]error{
		`{"a":1,"a":2}`:        errJSONDuplicate,
		`{"a":1,"\u0061":2}`:   errJSONDuplicate,
		`{"x":{"a":1,"a":1}}`:  errJSONDuplicate,
		`[1]`:                  errJSONNotObject,
		`"s"`:                  errJSONNotObject,
		`{"a":1}x`:             errJSONSyntax,
		`{"a":01}`:             errJSONSyntax,
		`{"a":1.}`:             errJSONSyntax,
		`{"a":.5}`:             errJSONSyntax,
		`{"a":+1}`:             errJSONSyntax,
		`{"a":1e999}`:          errJSONSyntax,
		`{"a":tru}`:            errJSONSyntax,
		`{"a":1,}`:             errJSONSyntax,
		`{a:1}`:                errJSONSyntax,
		"{\"a\":\"\x01\"}":     errJSONSyntax,
		"{\"a\":\"\xff\"}":     errJSONUTF8,
		`{"a":"\ud800"}`:       errJSONUTF8,
		`{"a":"\ud800\u0041"}`: errJSONUTF8,
		`{"a":"\x"}`:           errJSONSyntax,
		`{"a":"\u12"}`:         errJSONSyntax,
		`{"a":"unterminated}`:  errJSONSyntax,
		strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40):       errJSONDepth,
		`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "}": errJSONDepth,
	}
	for s, want := range bad {
		if _, err := parseJSONObject([]byte(s)); !errors.Is(err, want) {
			t.Errorf("%.40q: got %v want %v", s, err, want)
		}
	}
}

func TestROCAFingerprint(t *testing.T) {
	// Build a modulus with the ROCA structure: N ≡ 65537^a (mod M) for the primorial M.
	m := big.NewInt(1)
	for _, p := range rocaPrimes {
		m.Mul(m, big.NewInt(p))
	}
	g := new(big.Int).Exp(big.NewInt(65537), big.NewInt(1234), m)
	n := new(big.Int).Lsh(big.NewInt(1), 2048)
	n.Sub(n, new(big.Int).Mod(n, m)).Add(n, g) // n ≡ g (mod m), about 2048 bits
	if !rocaFingerprint(n) {
		t.Fatal("structured modulus not detected")
	}
	if rocaFingerprint(sharedRSA(t).N) {
		t.Fatal("a random modulus flagged as ROCA")
	}
	if rocaFingerprint(new(big.Int).Add(n, big.NewInt(2))) {
		t.Fatal("n+2 should not carry the fingerprint")
	}
}
