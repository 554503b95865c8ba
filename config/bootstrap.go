package config

import (
	"flag"
	"strings"

	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of the environment variables read at bootstrap.
const EnvPrefix = "PORTCULLIS"

// DefaultPath is the document path when neither -config nor PORTCULLIS_CONFIG is set.
const DefaultPath = "portcullis.yaml"

// envOverrides are the scalar settings an environment variable may override, applied
// after decoding and before validation. Keys are document paths; the variable is
// EnvName(key).
var envOverrides = [...]struct {
	key   string
	field func(*Document) *string
}{
	{"listeners.proxy", func(d *Document) *string { return &d.Listeners.Proxy }},
	{"listeners.grpc", func(d *Document) *string { return &d.Listeners.GRPC }},
	{"listeners.admin", func(d *Document) *string { return &d.Listeners.Admin }},
	{"listeners.forward_auth", func(d *Document) *string { return &d.Listeners.ForwardAuth }},
	{"upstream.url", func(d *Document) *string { return &d.Upstream.URL }},
	{"log.level", func(d *Document) *string { return &d.Log.Level }},
}

// EnvOverride is a document setting that an environment variable may override.
type EnvOverride struct {
	Key string // document path, e.g. "listeners.proxy"
	Env string // variable, e.g. "PORTCULLIS_LISTENERS_PROXY"
}

// EnvOverrides lists the settings environment variables may override.
func EnvOverrides() []EnvOverride {
	out := make([]EnvOverride, len(envOverrides))
	for i, o := range envOverrides {
		out[i] = EnvOverride{Key: o.key, Env: EnvName(o.key)}
	}
	return out
}

// EnvName returns the variable that overrides a document path:
// "listeners.forward_auth" -> "PORTCULLIS_LISTENERS_FORWARD_AUTH".
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyOverrides sets every overridable value lookup knows. A set but empty variable
// is a value (an empty listener address disables the listener).
func (doc *Document) applyOverrides(lookup func(key string) (string, bool)) {
	for _, o := range envOverrides {
		if val, ok := lookup(o.key); ok {
			*o.field(doc) = val
			if doc.env == nil {
				doc.env = make(map[string]string)
			}
			doc.env[o.key] = EnvName(o.key)
		}
	}
}

// LoadWithEnv is Load plus the PORTCULLIS_* overrides, looked up with env (e.g.
// os.LookupEnv, or a map in tests); nil env reads the process environment through
// viper.
func LoadWithEnv(path string, env func(name string) (string, bool)) (*Document, error) {
	if env == nil {
		return loadWith(path, viperLookup(newEnvViper()))
	}
	return loadWith(path, func(key string) (string, bool) { return env(EnvName(key)) })
}

// newEnvViper returns a viper that reads PORTCULLIS_* variables for dotted keys
// ("listeners.proxy" -> PORTCULLIS_LISTENERS_PROXY), empty values included. It never
// reads the document.
func newEnvViper() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true)
	v.AutomaticEnv()
	return v
}

func viperLookup(v *viper.Viper) func(string) (string, bool) {
	return func(key string) (string, bool) {
		if !v.IsSet(key) {
			return "", false
		}
		return v.GetString(key), true
	}
}

// Bootstrap holds the settings read before the document: its path, from the -config
// flag, else PORTCULLIS_CONFIG, else DefaultPath; and the PORTCULLIS_* overrides.
type Bootstrap struct {
	v *viper.Viper
}

// NewBootstrap returns bootstrap settings read from the process environment and, when
// fs is not nil, from a -config flag it registers on fs (call fs.Parse before
// ConfigPath or Load).
func NewBootstrap(fs *flag.FlagSet) *Bootstrap {
	b := &Bootstrap{v: newEnvViper()}
	if fs != nil {
		fs.String("config", "", "path of the policy document (env "+EnvPrefix+"_CONFIG; default "+DefaultPath+")")
		// BindFlagValue only fails on a nil flag, which stdFlag never is.
		_ = b.v.BindFlagValue("config", stdFlag{fs: fs, name: "config"})
	}
	return b
}

// ConfigPath returns the document path.
func (b *Bootstrap) ConfigPath() string {
	if p := b.v.GetString("config"); p != "" {
		return p
	}
	return DefaultPath
}

// Load loads the document at ConfigPath with the environment overrides.
func (b *Bootstrap) Load() (*Document, error) {
	return loadWith(b.ConfigPath(), viperLookup(b.v))
}

// stdFlag adapts a standard library flag to viper.FlagValue.
type stdFlag struct {
	fs   *flag.FlagSet
	name string
}

func (f stdFlag) HasChanged() bool {
	changed := false
	f.fs.Visit(func(fl *flag.Flag) { changed = changed || fl.Name == f.name })
	return changed
}

func (f stdFlag) Name() string { return f.name }

func (f stdFlag) ValueString() string {
	if fl := f.fs.Lookup(f.name); fl != nil {
		return fl.Value.String()
	}
	return ""
}

func (f stdFlag) ValueType() string { return "string" }
