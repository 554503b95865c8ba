package config

import "time"

// IntrospectionProvider is an RFC 7662 token introspection endpoint for opaque bearer
// tokens (providers.introspection). Stages refer to it by name: {introspection: idp}.
type IntrospectionProvider struct {
	Name     string `yaml:"name"`
	Endpoint string `yaml:"endpoint"` // https URL of the introspection endpoint
	// ClientID and ClientSecret authenticate Portcullis to the endpoint (HTTP Basic).
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// Issuer and Audiences, when set, must match the response's iss and aud.
	Issuer    string   `yaml:"issuer"`
	Audiences []string `yaml:"audiences"`
	// RequiredScopes must all be in the response's scope (else 403).
	RequiredScopes []string      `yaml:"required_scopes"`
	CacheTTL       time.Duration `yaml:"cache_ttl"`    // active results; default 5m, also bounded by exp
	NegativeTTL    time.Duration `yaml:"negative_ttl"` // inactive results; default 10s
	Timeout        time.Duration `yaml:"timeout"`      // per call; default 3s
	CAFile         string        `yaml:"ca_file"`      // PEM roots, relative to the document
	AllowHTTP      bool          `yaml:"allow_http"`   // development only
	// Forward keeps the Authorization header in the request sent upstream.
	Forward bool `yaml:"forward"`

	Pos Position `yaml:"-"`
}

func (p *IntrospectionProvider) setDefaults() {
	p.CacheTTL = 5 * time.Minute
	p.NegativeTTL = 10 * time.Second
	p.Timeout = 3 * time.Second
}

// Validate checks the name, endpoint, credentials and durations.
func (p *IntrospectionProvider) Validate(v *Validator, path string) {
	checkName(v, joinPath(path, "name"), "provider name", p.Name)
	checkHTTPS(v, joinPath(path, "endpoint"), p.Endpoint, p.AllowHTTP, "allow_http", "endpoint is required")
	if p.ClientID == "" && !p.ClientSecret.IsZero() {
		v.Errorf(joinPath(path, "client_id"), "a client_secret needs a client_id")
	}
	checkScopes(v, joinPath(path, "required_scopes"), p.RequiredScopes)
	positive(v, path, "timeout", p.Timeout)
}

// IntrospectionProviders is the list of introspection providers; names are unique.
type IntrospectionProviders []IntrospectionProvider

// Validate reports duplicate names (JWTProviders reports clashes with JWT providers).
func (ps IntrospectionProviders) Validate(v *Validator, path string) {
	checkUnique(v, path, "name", "provider name", ps, func(p *IntrospectionProvider) string { return p.Name })
}

// ByName returns the provider named name.
func (ps IntrospectionProviders) ByName(name string) (*IntrospectionProvider, bool) {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], true
		}
	}
	return nil, false
}
