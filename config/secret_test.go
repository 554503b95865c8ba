package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const secretValue = "s3cr3t-VALUE-must-not-leak"

func TestParseSecret(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		in, ref string
		ok      bool
	}{
		{"env:HMAC_KEY", "env:HMAC_KEY", true},
		{"env:_X1", "env:_X1", true},
		{"file:/run/secrets/key", "file:/run/secrets/key", true},
		{"file:key.txt", "file:" + filepath.Join(dir, "key.txt"), true},
		{"file:../x/./key", "file:" + filepath.Join(filepath.Dir(dir), "x", "key"), true},
		{secretValue, "", false},
		{"env:", "", false},
		{"env:1ABC", "", false},
		{"env:A-B", "", false},
		{"file:", "", false},
		{"vault:kv/x", "", false},
		{"ENV:X", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		s, err := ParseSecret(tt.in, dir)
		if (err == nil) != tt.ok || s.Ref() != tt.ref {
			t.Errorf("ParseSecret(%q) = %q, %v", tt.in, s.Ref(), err)
		}
		if err != nil && err.Error() != "secrets are given by reference: env:NAME or file:PATH" {
			t.Errorf("ParseSecret(%q) error = %q", tt.in, err)
		}
	}
}

func TestSecretResolve(t *testing.T) {
	t.Setenv("PORTCULLIS_TEST_SECRET", secretValue)
	t.Setenv("PORTCULLIS_TEST_EMPTY", "")
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("nl", secretValue+"\n")
	write("crlf", secretValue+"\r\n")
	write("two", secretValue+"\n\n")
	write("empty", "\n")
	write("big", strings.Repeat("x", MaxSecretBytes+1))
	tests := []struct {
		ref, want, err string
	}{
		{"env:PORTCULLIS_TEST_SECRET", secretValue, ""},
		{"env:PORTCULLIS_TEST_UNSET_XYZ", "", "secret env:PORTCULLIS_TEST_UNSET_XYZ: environment variable is not set"},
		{"env:PORTCULLIS_TEST_EMPTY", "", "secret env:PORTCULLIS_TEST_EMPTY: environment variable is empty"},
		{"file:nl", secretValue, ""},
		{"file:crlf", secretValue, ""},
		{"file:two", secretValue + "\n", ""}, // only one newline is removed
		{"file:empty", "", "file is empty"},
		{"file:big", "", "larger than 65536 bytes"},
		{"file:missing", "", "no such file"},
	}
	for _, tt := range tests {
		s, err := ParseSecret(tt.ref, dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Resolve()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: Resolve = %q, %v", tt.ref, got, err)
		}
	}
	if _, err := (Secret{}).Resolve(); err == nil {
		t.Error("zero Secret resolved")
	}
}

// TestSecretNeverPrinted is the attack: every way a Secret (or a struct holding one)
// can be printed, logged or serialized must show the reference, never the value.
func TestSecretNeverPrinted(t *testing.T) {
	t.Setenv("PORTCULLIS_TEST_SECRET", secretValue)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte(secretValue), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"env:PORTCULLIS_TEST_SECRET", "file:k"} {
		s, _ := ParseSecret(ref, dir)
		if v, err := s.Resolve(); err != nil || string(v) != secretValue {
			t.Fatalf("%s does not resolve: %v", ref, err)
		}
		holder := struct {
			Name   string
			Secret Secret
			Ptr    *Secret
			Many   []Secret
			ByName map[string]Secret
		}{"x", s, &s, []Secret{s}, map[string]Secret{"k": s}}
		var outputs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, holder), fmt.Sprintf(verb, &s))
		}
		outputs = append(outputs, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(holder))
		j, _ := json.Marshal(holder)
		y, _ := yaml.Marshal(holder)
		txt, _ := s.MarshalText()
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("m", "secret", s, "holder", holder)
		slog.New(slog.NewTextHandler(&logged, nil)).Info("m", "secret", s, "ptr", &s)
		outputs = append(outputs, string(j), string(y), string(txt), logged.String())
		for _, out := range outputs {
			if strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) {
				t.Fatalf("secret leaked: %s", out)
			}
		}
		if !strings.Contains(string(j), `"[redacted `+s.Ref()+`]"`) || s.String() != "[redacted "+s.Ref()+"]" {
			t.Errorf("unexpected redaction: %s / %s", j, s)
		}
	}
}

// TestSecretDecode decodes Secret fields through the document decoder, including the
// error for a literal value, which must not echo it.
func TestSecretDecode(t *testing.T) {
	type holder struct {
		Key Secret `yaml:"key"`
	}
	for _, tt := range []struct{ src, ref, err string }{
		{"key: env:HMAC_KEY", "env:HMAC_KEY", ""},
		{"key: file:/run/k", "file:/run/k", ""},
		{"key: file:k", "file:" + filepath.Join("conf", "k"), ""},
		{"key: ~", "", ""},
		{"key: " + secretValue, "", "h.yaml:1:6: key: secrets are given by reference: env:NAME or file:PATH"},
		{"key: [env:X]", "", "h.yaml:1:6: key: secrets are given by reference: env:NAME or file:PATH"},
	} {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(tt.src), &root); err != nil {
			t.Fatal(err)
		}
		d := newDecoder("h.yaml", "conf", &root)
		var h holder
		d.decode("", root.Content[0], &h)
		if got := d.errs.Error(); got != tt.err || h.Key.Ref() != tt.ref {
			t.Errorf("%q: ref %q err %q", tt.src, h.Key.Ref(), got)
		}
		if strings.Contains(d.errs.Error(), secretValue) {
			t.Errorf("error echoes the literal secret")
		}
	}
}
