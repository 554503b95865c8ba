package config

import "gopkg.in/yaml.v3"

// HMACStage authenticates requests by their signature, verified by one provider of
// providers.hmac (authenticate). It is written {hmac: {provider: NAME}}.
type HMACStage struct {
	// Provider names an entry of providers.hmac.
	Provider string `yaml:"provider"`
}

// decodeYAML decodes the mapping form and explains the form when given a bare name.
func (s *HMACStage) decodeYAML(d *decoder, path string, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		d.errorf(n, path, "expected a mapping: write hmac: {provider: %q}", truncate(n.Value, 40))
		return
	}
	if isNull(n) {
		return
	}
	d.structure(path, n, valueOf(s))
}

// Validate checks that the provider is configured.
func (s *HMACStage) Validate(v *Validator, path string) {
	ps := v.Document().Providers.HMAC
	p := joinPath(path, "provider")
	switch {
	case s.Provider == "":
		v.Errorf(p, "provider is required: the name of an entry of providers.hmac")
	case len(ps) == 0:
		v.Errorf(p, "unknown hmac provider %q: providers.hmac is empty", s.Provider)
	default:
		if _, _, ok := ps.ByName(s.Provider); !ok {
			v.Errorf(p, "unknown hmac provider %q; configured: %s", s.Provider, ps.names())
		}
	}
}
