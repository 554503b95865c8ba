package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxSecretBytes bounds the size of a file: secret.
const MaxSecretBytes = 64 << 10

// Secret is a reference to a secret value kept outside the document: "env:NAME" (an
// environment variable) or "file:PATH" (a file; a relative path is relative to the
// document's directory). The value is read only by Resolve; every way of printing or
// serializing a Secret shows "[redacted env:NAME]", never the value.
type Secret struct {
	source string // "env" or "file"
	ref    string // variable name or cleaned path
}

// ParseSecret parses a reference; baseDir anchors relative file paths.
func ParseSecret(s, baseDir string) (Secret, error) {
	source, ref, _ := strings.Cut(s, ":")
	switch {
	case source == "env" && validEnvName(ref):
		return Secret{source: "env", ref: ref}, nil
	case source == "file" && ref != "" && !strings.ContainsRune(ref, 0):
		if !filepath.IsAbs(ref) && baseDir != "" {
			ref = filepath.Join(baseDir, ref)
		}
		return Secret{source: "file", ref: filepath.Clean(ref)}, nil
	}
	return Secret{}, errors.New("secrets are given by reference: env:NAME or file:PATH")
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

// IsZero reports whether no reference was given.
func (s Secret) IsZero() bool { return s.source == "" }

// Ref returns the reference, e.g. "env:HMAC_KEY" (never the value).
func (s Secret) Ref() string {
	if s.IsZero() {
		return ""
	}
	return s.source + ":" + s.ref
}

// Resolve reads the secret value. A file's single trailing newline (\n or \r\n) is
// removed; an unset variable, an empty value and a file over MaxSecretBytes are
// errors. Errors name the reference, never the value.
func (s Secret) Resolve() ([]byte, error) {
	switch s.source {
	case "env":
		v, ok := os.LookupEnv(s.ref)
		if !ok {
			return nil, fmt.Errorf("secret %s: environment variable is not set", s.Ref())
		}
		if v == "" {
			return nil, fmt.Errorf("secret %s: environment variable is empty", s.Ref())
		}
		return []byte(v), nil
	case "file":
		return s.readFile()
	}
	return nil, errors.New("secret: no reference given")
}

func (s Secret) readFile() ([]byte, error) {
	f, err := os.Open(s.ref)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", s.Ref(), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
	if err != nil {
		return nil, fmt.Errorf("secret %s: read failed", s.Ref())
	}
	if len(b) > MaxSecretBytes {
		return nil, fmt.Errorf("secret %s: larger than %d bytes", s.Ref(), MaxSecretBytes)
	}
	b = trimNewline(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("secret %s: file is empty", s.Ref())
	}
	return b, nil
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// String returns "[redacted env:NAME]".
func (s Secret) String() string {
	if s.IsZero() {
		return "[redacted]"
	}
	return "[redacted " + s.Ref() + "]"
}

// GoString is String, so %#v does not show the fields either.
func (s Secret) GoString() string { return s.String() }

// Format prints String for every verb (%v, %+v, %#v, %s, %q, %x...).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalText returns String (zap, encoding/xml and map keys use it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns String as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML returns String.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue returns String for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

func (s *Secret) decodeYAML(d *decoder, path string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "secrets are given by reference: env:NAME or file:PATH")
		return
	}
	sec, err := ParseSecret(n.Value, d.baseDir)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*s = sec
}
