package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// What a stage's technical failure does.
const (
	OnErrorDeny  = "deny"  // deny with 503 (default: fail closed)
	OnErrorAllow = "allow" // skip the stage as if it had passed
)

// StageSpec is the typed configuration of one stage kind (*IPStage, *APIKeyStage,
// *ScopesStage...). Its Validate receives the path of the kind key, e.g.
// "policies.api.inspect[0].ip".
type StageSpec interface {
	Validatable
}

// Stage is one entry of a policy phase: exactly one stage-kind key plus the common
// keys on_error and shadow, e.g. {ip: {deny: [10.0.0.0/8]}, shadow: true}.
type Stage struct {
	// Kind is the stage-kind key ("ip", "apikey", "scopes"...).
	Kind string `yaml:"-"`
	// OnError is OnErrorDeny (default) or OnErrorAllow.
	OnError string `yaml:"on_error"`
	// Shadow makes the stage's denials logged and counted but not enforced.
	Shadow bool `yaml:"shadow"`
	// Spec is the kind's typed configuration; its dynamic type is fixed by Kind (see
	// StageKinds). Nil only in a document that failed to decode.
	Spec StageSpec `yaml:"-"`
	// Pos is where the kind key is written; Pos.Path is the stage's path, e.g.
	// "policies.api.authenticate[0]".
	Pos Position `yaml:"-"`
}

// StageKind describes one stage kind: its key, the phases that take it and the
// constructor of its typed configuration (with defaults set).
type StageKind struct {
	Name   string
	Phases []Phase
	New    func() StageSpec
}

// stageKinds is the one table of stage kinds. To add a kind, define its spec type in
// config/stage_<kind>.go and add its row here.
var stageKinds = [...]StageKind{
	{Name: "apikey", Phases: []Phase{PhaseAuthenticate}, New: newAPIKeyStage},
	{Name: "bruteforce", Phases: []Phase{PhaseInspect}, New: newBruteForceStage},
	{Name: "hmac", Phases: []Phase{PhaseAuthenticate}, New: func() StageSpec { return new(HMACStage) }},
	{Name: "introspection", Phases: []Phase{PhaseAuthenticate}, New: func() StageSpec { return new(IntrospectionStage) }},
	{Name: "ip", Phases: []Phase{PhaseInspect, PhaseAuthorize}, New: func() StageSpec { return new(IPStage) }},
	{Name: "jwt", Phases: []Phase{PhaseAuthenticate}, New: func() StageSpec { return new(JWTStage) }},
	{Name: "ratelimit", Phases: []Phase{PhaseInspect, PhaseLimit}, New: func() StageSpec { return new(RateLimitStage) }},
	{Name: "scopes", Phases: []Phase{PhaseAuthorize}, New: func() StageSpec { return new(ScopesStage) }},
}

// StageKinds returns the known stage kinds.
func StageKinds() []StageKind { return stageKinds[:] }

func lookupStageKind(name string) (StageKind, bool) {
	for _, k := range stageKinds {
		if k.Name == name {
			return k, true
		}
	}
	return StageKind{}, false
}

func stageKindNames() string {
	names := make([]string, len(stageKinds))
	for i, k := range stageKinds {
		names[i] = k.Name
	}
	return strings.Join(names, ", ")
}

func (s *Stage) decodeYAML(d *decoder, path string, n *yaml.Node) {
	s.OnError = OnErrorDeny
	s.Pos = Position{Path: path, Line: n.Line, Col: n.Column}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a stage, a mapping with one stage kind (%s), got %s", stageKindNames(), describe(n))
		return
	}
	kinds := 0
	d.entries(path, n, func(key string, k, val *yaml.Node) {
		p := joinPath(path, key)
		switch key {
		case "on_error":
			d.value(p, val, valueOf(&s.OnError))
			return
		case "shadow":
			d.value(p, val, valueOf(&s.Shadow))
			return
		}
		kinds++
		kind, ok := lookupStageKind(key)
		switch {
		case !ok:
			d.errorf(k, p, "unknown stage kind %q; known kinds: %s", key, stageKindNames())
		case s.Kind != "":
			d.errorf(k, p, "a stage has exactly one kind; this one already has %q", s.Kind)
		default:
			s.Kind, s.Spec = key, kind.New()
			s.Pos = Position{Path: path, Line: k.Line, Col: k.Column}
			d.pos[p] = Position{Path: p, Line: k.Line, Col: k.Column} // errors about the spec point at its kind
			d.value(p, val, valueOf(s.Spec))
		}
	})
	if n.Kind == yaml.MappingNode && kinds == 0 {
		d.errorf(n, path, "stage has no kind; expected one of: %s", stageKindNames())
	}
}

// Validate checks the common keys.
func (s *Stage) Validate(v *Validator, path string) {
	if !oneOf(s.OnError, OnErrorDeny, OnErrorAllow) {
		v.Errorf(joinPath(path, "on_error"), "invalid on_error %q: expected deny or allow", s.OnError)
	}
}
