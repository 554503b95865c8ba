package config

// Providers holds the credentials and identity sources that stages refer to, one
// field per provider kind. To add a kind, add its field here and define its type, with
// a Validate method, in its own file provider_<kind>.go; decoding, validation, the
// reference documentation test and error positions follow from the yaml tag.
type Providers struct {
	APIKeys       APIKeys                `yaml:"apikeys"`
	HMAC          HMACProviders          `yaml:"hmac"`
	JWT           JWTProviders           `yaml:"jwt"`
	Introspection IntrospectionProviders `yaml:"introspection"`
}
