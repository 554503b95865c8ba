package apikey

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

// keyPattern is the reference grammar parseKey must agree with.
var keyPattern = regexp.MustCompile(`^pk_([a-z0-9]{4,32})_[a-z2-7]{56}$`)

func TestParseKey(t *testing.T) {
	valid := "pk_ab12cd34_" + strings.Repeat("a2", 28)
	tests := []struct {
		name, in string
		id       string // "" means malformed
	}{
		{"valid", valid, "ab12cd34"},
		{"empty", "", ""},
		{"prefix only", "pk_", ""},
		{"too short", valid[:KeyLen-1], ""},
		{"too long", valid + "a", ""},
		{"wrong prefix", "sk" + valid[2:], ""},
		{"uppercase prefix", "PK" + valid[2:], ""},
		{"uppercase id", "pk_AB12CD34_" + valid[12:], ""},
		{"id too short", "pk_ab12cd3_a" + valid[12:], ""},
		{"extra underscore in id", "pk_ab_2cd34_" + valid[12:], ""},
		{"extra underscore in secret", valid[:30] + "_" + valid[31:], ""},
		{"dash in secret", valid[:30] + "-" + valid[31:], ""},
		{"padding", valid[:KeyLen-1] + "=", ""},
		{"digit 1 not base32", valid[:40] + "1" + valid[41:], ""},
		{"digit 8 not base32", valid[:40] + "8" + valid[41:], ""},
		{"uppercase secret", valid[:12] + strings.ToUpper(valid[12:]), ""},
		{"unicode same length", valid[:KeyLen-2] + "é", ""},
		{"nul byte", valid[:20] + "\x00" + valid[21:], ""},
		{"space", valid[:20] + " " + valid[21:], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := parseKey(tt.in)
			if ok != (tt.id != "") || id != tt.id {
				t.Fatalf("parseKey(%q) = %q, %v; want %q", tt.in, id, ok, tt.id)
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	g, err := Generate(nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{g.Key, "", "pk_", "pk_ab12cd34_", g.Key + "=", strings.ToUpper(g.Key),
		"Bearer " + g.Key, g.Key[:KeyLen-2] + "é", "pk_________" + strings.Repeat("_", SecretLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseKey(s)
		m := keyPattern.FindStringSubmatch(s)
		if ok != (m != nil) {
			t.Fatalf("parseKey(%q) ok=%v, reference grammar says %v", s, ok, m != nil)
		}
		if ok && id != m[1] {
			t.Fatalf("parseKey(%q) id=%q, want %q", s, id, m[1])
		}
	})
}

func TestGenerate(t *testing.T) {
	seen := make(map[string]bool)
	for range 50 {
		g, err := Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[g.Key] || seen[g.ID+"id"] {
			t.Fatalf("Generate repeated %s", g.ID)
		}
		seen[g.Key], seen[g.ID+"id"] = true, true
		id, ok := parseKey(g.Key)
		if !ok || id != g.ID {
			t.Fatalf("generated key does not parse: %v %q", ok, id)
		}
		if g.Hash != HashKey(g.Key) {
			t.Fatal("hash does not match key")
		}
		h, err := ParseHash(g.Hash)
		if err != nil || h != sha512.Sum512([]byte(g.Key)) {
			t.Fatalf("ParseHash: %v", err)
		}
		raw, err := secretEncoding.DecodeString(g.Key[len(Prefix)+IDLen+1:])
		if err != nil || len(raw)*8 < 256 {
			t.Fatalf("secret decodes to %d bits (%v), want >= 256", len(raw)*8, err)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	// Bytes >= 252 are rejected for the id, so the first 0xff is skipped; 251 % 36 is 35.
	src := append([]byte{0xff, 0, 1, 35, 36, 251, 2, 3, 4}, make([]byte, 64)...)
	g, err := Generate(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != "ab9a9cde" {
		t.Fatalf("id = %q", g.ID)
	}
	if want := "pk_" + g.ID + "_" + strings.Repeat("a", SecretLen); g.Key != want {
		t.Fatalf("key = %q, want %q", g.Key, want)
	}
}

func TestGenerateBadSource(t *testing.T) {
	if _, err := Generate(bytes.NewReader([]byte{1, 2, 3})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short source: %v", err)
	}
	if _, err := Generate(bytes.NewReader(bytes.Repeat([]byte{0xff}, 4096))); err == nil {
		t.Error("constant 0xff source: want error")
	}
}

func TestParseHash(t *testing.T) {
	good := HashKey("pk_x")
	tests := []struct{ name, in, want string }{
		{"ok", good, ""},
		{"uppercase hex", "sha512:" + strings.ToUpper(good[7:]), ""},
		{"no prefix", good[7:], "must start with"},
		{"sha256", "sha256:" + good[7:], "must start with"},
		{"short", good[:len(good)-2], "hex digits"},
		{"not hex", good[:len(good)-1] + "g", "invalid byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHash(tt.in)
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseHash = %v, want %q", err, tt.want)
			}
		})
	}
}
