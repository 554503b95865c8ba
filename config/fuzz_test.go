package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: it must never panic, and must return
// either a document or a non-empty Errors whose every entry names the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/errors/*.yaml")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "~", "[]", "{}", "a", "&a [*a]", "listeners: &l {proxy: *l}",
		"policies: {p: {inspect: [{ip: ~, shadow: ~, on_error: ~}]}}",
		"routes: [{match: {path: {regex: '(?i'}}}]", "providers: {apikeys: [~, 1, [], {}]}",
		"policies: {? [a] : b}", "policies: {p: &p {authorize: [*p]}}",
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(aliasBomb()))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse("f.yaml", data)
		if (doc == nil) == (err == nil) {
			t.Fatalf("doc %v and err %v", doc, err)
		}
		if err == nil {
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not a non-empty Errors: %v", err)
		}
		for _, e := range errs {
			if e.File != "f.yaml" || !strings.HasPrefix(e.Error(), "f.yaml") {
				t.Fatalf("error without file: %q", e.Error())
			}
		}
	})
}
