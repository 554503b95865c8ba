package config

import "net/netip"

// IPStage allows or denies by client address (inspect, authorize). A deny entry wins
// over an allow entry; an empty Allow allows every address not denied.
type IPStage struct {
	Allow []netip.Prefix `yaml:"allow"`
	Deny  []netip.Prefix `yaml:"deny"`
}

// Validate requires at least one list.
func (s *IPStage) Validate(v *Validator, path string) {
	if len(s.Allow) == 0 && len(s.Deny) == 0 {
		v.Errorf(path, "an ip stage needs allow or deny")
	}
}
