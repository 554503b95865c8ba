package config

import (
	"strings"
)

// Phase names a fixed step of a decision. Users choose stages within phases, never
// the order of phases.
type Phase string

// The phases, in the order the engine runs them.
const (
	PhaseInspect      Phase = "inspect"
	PhaseAuthenticate Phase = "authenticate"
	PhaseAuthorize    Phase = "authorize"
	PhaseLimit        Phase = "limit"
	PhaseDecorate     Phase = "decorate"
)

// How the authenticate phase combines its stages.
const (
	AuthModeAny = "any" // the first stage that finds a credential decides (default)
	AuthModeAll = "all" // every stage must find and verify its credential
)

// Policy is a named pipeline: stages grouped by phase.
type Policy struct {
	// Name is the policy's key under policies.
	Name string `yaml:"-"`
	// Anonymous lets a request with no credential pass as the anonymous identity; a
	// present but invalid credential still denies. Default false.
	Anonymous bool `yaml:"anonymous"`
	// AuthMode is AuthModeAny (default) or AuthModeAll.
	AuthMode     string  `yaml:"auth_mode"`
	Inspect      []Stage `yaml:"inspect"`
	Authenticate []Stage `yaml:"authenticate"`
	Authorize    []Stage `yaml:"authorize"`
	Limit        []Stage `yaml:"limit"`
	Decorate     []Stage `yaml:"decorate"`

	// Pos is where the policy's name is written.
	Pos Position `yaml:"-"`
}

func (p *Policy) setDefaults() { p.AuthMode = AuthModeAny }

// PhaseStages is one phase of a policy with its stages.
type PhaseStages struct {
	Phase  Phase
	Stages []Stage
}

// Phases returns the policy's stages by phase, in engine order.
func (p *Policy) Phases() []PhaseStages {
	return []PhaseStages{
		{PhaseInspect, p.Inspect},
		{PhaseAuthenticate, p.Authenticate},
		{PhaseAuthorize, p.Authorize},
		{PhaseLimit, p.Limit},
		{PhaseDecorate, p.Decorate},
	}
}

// Validate checks the name, the auth mode, that each stage kind is allowed in its
// phase, and that the policy can allow anything at all.
func (p *Policy) Validate(v *Validator, path string) {
	checkName(v, path, "policy name", p.Name)
	if !oneOf(p.AuthMode, AuthModeAny, AuthModeAll) {
		v.Errorf(joinPath(path, "auth_mode"), "invalid auth_mode %q: expected any or all", p.AuthMode)
	}
	for _, ph := range p.Phases() {
		for i, st := range ph.Stages {
			if ph.Phase == PhaseAuthenticate && st.OnError == OnErrorAllow {
				v.Errorf(joinPath(indexPath(joinPath(path, string(ph.Phase)), i), "on_error"),
					"on_error: allow is not allowed in authenticate: a credential that cannot be verified must never pass as anonymous")
			}
			k, ok := lookupStageKind(st.Kind)
			if !ok || k.allowedIn(ph.Phase) {
				continue
			}
			v.Errorf(joinPath(indexPath(joinPath(path, string(ph.Phase)), i), st.Kind),
				"%s stages are not allowed in %s; they go in %s", st.Kind, ph.Phase, k.phaseList())
		}
	}
	if len(p.Authenticate) == 0 && !p.Anonymous {
		v.Errorf(path, "policy %s can never allow: no authenticate stage and anonymous is false", p.Name)
	}
}

func (k StageKind) allowedIn(ph Phase) bool {
	for _, x := range k.Phases {
		if x == ph {
			return true
		}
	}
	return false
}

func (k StageKind) phaseList() string {
	names := make([]string, len(k.Phases))
	for i, ph := range k.Phases {
		names[i] = string(ph)
	}
	return strings.Join(names, " or ")
}
