package config

import (
	"errors"
	"strings"
	"testing"
)

// "0100" is 100 in YAML 1.2 but yaml.v3 reads it as YAML 1.1 octal, 64: it was decoded
// as 64 without an error (found by a second reader's review). It is refused; 0o100
// and 0x40 say what they mean.
func TestLeadingZeroIntegerRefused(t *testing.T) {
	for _, v := range []string{"0100", "-010", "0_1"} {
		_, err := Parse("t.yaml", []byte("upstream: {url: http://127.0.0.1:8080}\nserver: {max_header_count: "+v+"}\n"))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 || es[0].Line != 2 {
			t.Errorf("max_header_count: %s: %v, want a positioned error", v, err)
		}
	}
	for v, want := range map[string]int{"0o100": 64, "0x40": 64, "100": 100} {
		doc, err := Parse("t.yaml", []byte("upstream: {url: http://127.0.0.1:8080}\nserver: {max_header_count: "+v+"}\n"))
		if err != nil || doc.Server.MaxHeaderCount != want {
			t.Errorf("max_header_count: %s: %v, %v; want %d", v, doc.Server.MaxHeaderCount, err, want)
		}
	}
}

// A URL quoted in an error never shows its password, also when the URL fails an
// earlier check than the one for credentials (it was echoed whole, and reload errors
// are logged).
func TestURLErrorsHidePasswords(t *testing.T) {
	for _, doc := range []string{
		`upstream: {url: "ftp://user:hunter2@backend:21"}`,
		`upstream: {url: "http://user:hunter2@"}`,
		`upstream: {url: "http://user:hunter2@%zz/x"}`,
	} {
		_, err := Parse("t.yaml", []byte(doc+"\n"))
		if err == nil {
			t.Fatalf("%s accepted", doc)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the URL's password: %v", err)
		}
	}
}

// Every malformed document names file:line, also where yaml.v3 gives no line: a
// problem on the first line, an unknown anchor (found by a second reader's review).
func TestMalformedYAMLHasLine(t *testing.T) {
	for src, want := range map[string]int{
		"a: b: c\n": 1,
		"log: &a {level: info}\nupstream: *nope\n": 2,
		"x: 1\n  y: [\n": 2,
	} {
		_, err := Parse("t.yaml", []byte(src))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("%q: %v", src, err)
		}
		if es[0].Line != want {
			t.Errorf("%q: line %d, want %d (%v)", src, es[0].Line, want, es[0])
		}
	}
}
