package config

// APIKeyStage authenticates with the API keys of providers.apikeys (authenticate).
type APIKeyStage struct {
	// Sources are where the key is looked for, in order. Default: a bearer token,
	// then the X-API-Key header.
	Sources []APIKeySource `yaml:"sources"`
	// Keys restricts the stage to these key ids; default: every configured key.
	Keys []string `yaml:"keys"`
	// ForwardCredentials keeps the key in the request sent upstream; by default the
	// header or query parameter that carried it is removed.
	ForwardCredentials bool `yaml:"forward_credentials"`
}

// APIKeySource is one place a key may be sent: exactly one of Header, Query, Bearer.
type APIKeySource struct {
	Header string `yaml:"header"` // a request header, e.g. X-API-Key
	Query  string `yaml:"query"`  // a query parameter, e.g. api_key
	Bearer bool   `yaml:"bearer"` // Authorization: Bearer <key>
}

func newAPIKeyStage() StageSpec {
	return &APIKeyStage{Sources: []APIKeySource{{Bearer: true}, {Header: "X-API-Key"}}}
}

// Validate checks the sources and that every listed key id is configured.
func (s *APIKeyStage) Validate(v *Validator, path string) {
	if len(s.Sources) == 0 {
		v.Errorf(joinPath(path, "sources"), "at least one source is required")
	}
	keys := v.Document().Providers.APIKeys
	if len(keys) == 0 {
		v.Errorf(path, "no API keys are configured (providers.apikeys is empty)")
	}
	for i, id := range s.Keys {
		if _, ok := keys.ByID(id); !ok && len(keys) > 0 {
			v.Errorf(indexPath(joinPath(path, "keys"), i), "unknown key id %q", id)
		}
	}
}

// Validate checks that exactly one place is given, and that it is well formed.
func (src *APIKeySource) Validate(v *Validator, path string) {
	header, query, bearer := joinPath(path, "header"), joinPath(path, "query"), joinPath(path, "bearer")
	n := 0
	if src.Header != "" || v.Has(header) {
		n++
		if !isToken(src.Header) {
			v.Errorf(header, "invalid header name %q", src.Header)
		}
	}
	if src.Query != "" || v.Has(query) {
		n++
		if src.Query == "" {
			v.Errorf(query, "query parameter name is empty")
		}
	}
	if src.Bearer || v.Has(bearer) {
		n++
		if !src.Bearer {
			v.Errorf(bearer, "bearer: false is not a source; remove the entry")
		}
	}
	if n != 1 {
		v.Errorf(path, "a source is exactly one of header, query or bearer")
	}
}
