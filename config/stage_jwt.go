package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// JWTStage authenticates with a JWT provider (authenticate), written as the
// provider's name: {jwt: corp}. In an any-of authenticate list, a JWT provider
// followed by another JWT stage passes tokens of other issuers on to it instead of
// rejecting them (so it needs an issuer); the last one rejects them.
type JWTStage struct {
	Provider string `yaml:"-"`
}

// IntrospectionStage authenticates with an introspection provider (authenticate),
// written as the provider's name: {introspection: idp}.
type IntrospectionStage struct {
	Provider string `yaml:"-"`
}

func (s *JWTStage) decodeYAML(d *decoder, path string, n *yaml.Node) {
	s.Provider = decodeProviderName(d, path, n, "jwt")
}

func (s *IntrospectionStage) decodeYAML(d *decoder, path string, n *yaml.Node) {
	s.Provider = decodeProviderName(d, path, n, "introspection")
}

func decodeProviderName(d *decoder, path string, n *yaml.Node, kind string) string {
	if n.Kind != yaml.ScalarNode || isNull(n) || n.ShortTag() != "!!str" || strings.TrimSpace(n.Value) == "" {
		d.errorf(n, path, "expected the name of a providers.%s entry, such as {%s: corp}, got %s", kind, kind, describe(n))
		return ""
	}
	return n.Value
}

// Validate checks that the provider exists.
func (s *JWTStage) Validate(v *Validator, path string) {
	ps := v.Document().Providers.JWT
	if _, ok := ps.ByName(s.Provider); !ok {
		v.Errorf(path, "unknown jwt provider %q%s", s.Provider, knownNames(len(ps), func(i int) string { return ps[i].Name }))
	}
}

// Validate checks that the provider exists.
func (s *IntrospectionStage) Validate(v *Validator, path string) {
	ps := v.Document().Providers.Introspection
	if _, ok := ps.ByName(s.Provider); !ok {
		v.Errorf(path, "unknown introspection provider %q%s", s.Provider, knownNames(len(ps), func(i int) string { return ps[i].Name }))
	}
}

func knownNames(n int, name func(int) string) string {
	if n == 0 {
		return " (none is configured)"
	}
	names := make([]string, n)
	for i := range names {
		names[i] = name(i)
	}
	return "; known: " + strings.Join(names, ", ")
}
