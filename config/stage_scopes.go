package config

// ScopesStage requires scopes of the authenticated identity (authorize): at least one
// of Any, and all of All.
type ScopesStage struct {
	Any []string `yaml:"any"`
	All []string `yaml:"all"`
}

// Validate requires at least one non-empty list of valid scopes.
func (s *ScopesStage) Validate(v *Validator, path string) {
	if len(s.Any) == 0 && len(s.All) == 0 {
		v.Errorf(path, "a scopes stage needs any or all")
	}
	checkScopes(v, joinPath(path, "any"), s.Any)
	checkScopes(v, joinPath(path, "all"), s.All)
}
