package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeDoc(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvOverrides(t *testing.T) {
	want := []EnvOverride{
		{"listeners.proxy", "PORTCULLIS_LISTENERS_PROXY"},
		{"listeners.grpc", "PORTCULLIS_LISTENERS_GRPC"},
		{"listeners.admin", "PORTCULLIS_LISTENERS_ADMIN"},
		{"listeners.forward_auth", "PORTCULLIS_LISTENERS_FORWARD_AUTH"},
		{"upstream.url", "PORTCULLIS_UPSTREAM_URL"},
		{"log.level", "PORTCULLIS_LOG_LEVEL"},
	}
	if got := EnvOverrides(); !reflect.DeepEqual(got, want) {
		t.Errorf("EnvOverrides = %v", got)
	}
}

func TestLoadWithEnv(t *testing.T) {
	path := writeDoc(t, "listeners: {proxy: 127.0.0.1:8000}\nlog: {level: info}\n")
	tests := []struct {
		name  string
		env   map[string]string
		check func(*Document) bool
		err   string
	}{
		{"no overrides: no upstream", nil, nil,
			path + ":1:1: upstream.url: no upstream: listeners.proxy is set, so upstream.url is required"},
		{"upstream from env", map[string]string{"PORTCULLIS_UPSTREAM_URL": "http://127.0.0.1:9"},
			func(d *Document) bool { return d.Upstream.URL == "http://127.0.0.1:9" }, ""},
		{"empty disables the proxy", map[string]string{"PORTCULLIS_LISTENERS_PROXY": "", "PORTCULLIS_LISTENERS_FORWARD_AUTH": "127.0.0.1:9010"},
			func(d *Document) bool { return d.Listeners.Proxy == "" && d.Listeners.ForwardAuth == "127.0.0.1:9010" }, ""},
		{"all scalars", map[string]string{
			"PORTCULLIS_LISTENERS_PROXY": "127.0.0.1:1", "PORTCULLIS_LISTENERS_GRPC": "127.0.0.1:2",
			"PORTCULLIS_LISTENERS_ADMIN": "127.0.0.1:3", "PORTCULLIS_UPSTREAM_URL": "https://127.0.0.1:4",
			"PORTCULLIS_LOG_LEVEL": "debug"},
			func(d *Document) bool {
				return d.Listeners == Listeners{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", ""} &&
					d.Upstream.URL == "https://127.0.0.1:4" && d.Log.Level == "debug"
			}, ""},
		{"bad value names the variable", map[string]string{"PORTCULLIS_UPSTREAM_URL": "http://127.0.0.1:9", "PORTCULLIS_LOG_LEVEL": "loud"}, nil,
			path + `: log.level: invalid level "loud": expected debug, info, warn or error (set by PORTCULLIS_LOG_LEVEL)`},
		{"lowercase variables are not read", map[string]string{"portcullis_upstream_url": "http://127.0.0.1:9"}, nil, "no upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := LoadWithEnv(path, mapEnv(tt.env))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(doc) {
				t.Errorf("overrides not applied: %+v", doc)
			}
		})
	}
}

// TestLoadWithProcessEnv reads the real environment through viper.
func TestLoadWithProcessEnv(t *testing.T) {
	path := writeDoc(t, "upstream: {url: http://127.0.0.1:8080}\n")
	t.Setenv("PORTCULLIS_LISTENERS_GRPC", "")
	t.Setenv("PORTCULLIS_LOG_LEVEL", "warn")
	t.Setenv("PORTCULLIS_UPSTREAM_URL", "http://127.0.0.1:7")
	doc, err := LoadWithEnv(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Listeners.GRPC != "" || doc.Log.Level != "warn" || doc.Upstream.URL != "http://127.0.0.1:7" || doc.Listeners.Proxy != "127.0.0.1:8000" {
		t.Errorf("doc = %+v", doc)
	}
	// Load never applies overrides.
	if doc, err := Load(path); err != nil || doc.Log.Level != "info" {
		t.Errorf("Load applied overrides: %v %+v", err, doc)
	}
}

func TestBootstrapConfigPath(t *testing.T) {
	flagged := writeDoc(t, "upstream: {url: http://127.0.0.1:1}\n")
	fromEnv := writeDoc(t, "upstream: {url: http://127.0.0.1:2}\n")
	tests := []struct {
		name, env string
		args      []string
		want      string
	}{
		{"default", "", nil, DefaultPath},
		{"env", fromEnv, nil, fromEnv},
		{"flag beats env", fromEnv, []string{"-config", flagged}, flagged},
		{"flag", "", []string{"-config=" + flagged}, flagged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PORTCULLIS_CONFIG", tt.env)
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			b := NewBootstrap(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got := b.ConfigPath(); got != tt.want {
				t.Fatalf("ConfigPath = %q, want %q", got, tt.want)
			}
			if tt.want == DefaultPath {
				return
			}
			t.Setenv("PORTCULLIS_LOG_LEVEL", "error")
			doc, err := b.Load()
			if err != nil || doc.Source != tt.want || doc.Log.Level != "error" {
				t.Fatalf("Load = %+v, %v", doc, err)
			}
		})
	}
	if b := NewBootstrap(nil); b.ConfigPath() == "" {
		t.Error("no path without a flag set")
	}
}
