package config

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Store failure policies of on_store_error.
const (
	OnStoreErrorLocal = "local" // the in-memory limiter at this replica's share (default)
	OnStoreErrorAllow = "allow" // admit the request
	OnStoreErrorDeny  = "deny"  // deny with 503
)

// RateLimitStage applies one or more rate limits (inspect, limit). Every limit
// applies; the request is denied with 429 when any enforced limit refuses it.
type RateLimitStage struct {
	Limits []RateLimitRule `yaml:"limits"`
	// HeadersOnAllow adds RateLimit-Policy and RateLimit to allowed responses too.
	HeadersOnAllow bool `yaml:"headers_on_allow"`
}

// RateLimitRule is one limit: a rate per key.
type RateLimitRule struct {
	// Name identifies the limit in headers, metrics and store keys; required. Limits
	// with one name share their counters, so a name used twice must define the same
	// limit (key, rate, burst).
	Name string `yaml:"name"`
	// Key lists what requests are counted by; empty: one bucket for every request.
	Key RateLimitKey `yaml:"key"`
	// Rate is "N/s", "N/min", "N/h" or "N/day".
	Rate Rate `yaml:"rate"`
	// Burst is the largest burst admitted at once; 0 means the rate's N.
	Burst int64 `yaml:"burst"`
	// Shadow counts and reports the limit without denying.
	Shadow bool `yaml:"shadow"`
	// OnStoreError is local (default), allow or deny.
	OnStoreError string `yaml:"on_store_error"`
}

func (r *RateLimitRule) setDefaults() { r.OnStoreError = OnStoreErrorLocal }

// maxRateCount bounds N in a rate (at least one nanosecond per unit).
const maxRateCount = 1_000_000_000

// Rate is a count per period, written "N/unit".
type Rate struct {
	Count  uint64
	Period time.Duration
}

// rateUnits are the accepted units of a rate.
var rateUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// ParseRate parses "N/s", "N/min", "N/h" or "N/day" (also sec, second, minute, hour,
// d) with N from 1 to 10^9.
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: expected N/s, N/min, N/h or N/day such as 100/s", truncate(s, 40))
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil || n == 0 || n > maxRateCount {
		return Rate{}, fmt.Errorf("invalid rate %q: the count must be an integer from 1 to %d", truncate(s, 40), maxRateCount)
	}
	per, ok := rateUnits[strings.TrimSpace(unit)]
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: unknown unit %q; expected s, min, h or day", truncate(s, 40), truncate(unit, 20))
	}
	return Rate{Count: n, Period: per}, nil
}

// String returns the rate as written in a document, e.g. "100/s".
func (r Rate) String() string {
	unit := "s"
	switch r.Period {
	case time.Minute:
		unit = "min"
	case time.Hour:
		unit = "h"
	case 24 * time.Hour:
		unit = "day"
	}
	return strconv.FormatUint(r.Count, 10) + "/" + unit
}

func (r *Rate) decodeYAML(d *decoder, path string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a rate such as 100/s, got %s", describe(n))
		return
	}
	rate, err := ParseRate(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*r = rate
}

// Key part kinds of a rate limit key.
const (
	KeyClientIP    = "client_ip"     // the client address
	KeyClientIPNet = "client_ip_net" // its /24 (IPv4) or /64 (IPv6)
	KeySubject     = "subject"       // the authenticated subject (limit phase)
	KeyAPIKey      = "api_key"       // the API key id (limit phase)
	KeyHeader      = "header"        // written header:NAME
	KeyRoute       = "route"
	KeyMethod      = "method"
	KeyPath        = "path"
)

var keyKinds = []string{KeyClientIP, KeyClientIPNet, KeySubject, KeyAPIKey, KeyRoute, KeyMethod, KeyPath}

// RateLimitKeyPart is one component of a key: Kind, and Header for KeyHeader.
type RateLimitKeyPart struct {
	Kind   string
	Header string
}

// NeedsIdentity reports whether the part reads the identity (limit phase only).
func (p RateLimitKeyPart) NeedsIdentity() bool { return p.Kind == KeySubject || p.Kind == KeyAPIKey }

// String returns the part as written, e.g. "header:X-Tenant".
func (p RateLimitKeyPart) String() string {
	if p.Kind == KeyHeader {
		return KeyHeader + ":" + p.Header
	}
	return p.Kind
}

// ParseKeyPart parses client_ip, client_ip_net, subject, api_key, route, method, path
// or header:NAME.
func ParseKeyPart(s string) (RateLimitKeyPart, error) {
	if name, ok := strings.CutPrefix(s, KeyHeader+":"); ok {
		if !isToken(name) {
			return RateLimitKeyPart{}, fmt.Errorf("invalid header name %q in key part %q", truncate(name, 40), truncate(s, 60))
		}
		return RateLimitKeyPart{Kind: KeyHeader, Header: http.CanonicalHeaderKey(name)}, nil
	}
	if oneOf(s, keyKinds...) {
		return RateLimitKeyPart{Kind: s}, nil
	}
	return RateLimitKeyPart{}, fmt.Errorf("unknown key part %q; expected %s or header:NAME", truncate(s, 40), strings.Join(keyKinds, ", "))
}

// RateLimitKey is the list of key parts, written as one part or a list of parts.
type RateLimitKey []RateLimitKeyPart

func (k *RateLimitKey) decodeYAML(d *decoder, path string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	items, one := n.Content, false
	switch n.Kind {
	case yaml.ScalarNode:
		items, one = []*yaml.Node{n}, true
	case yaml.SequenceNode:
	default:
		d.errorf(n, path, "expected a key part or a list of key parts, got %s", describe(n))
		return
	}
	if !d.spend(n, path, len(items)) {
		return
	}
	out := make(RateLimitKey, 0, len(items))
	for i, it := range items {
		p := path
		if !one {
			p = indexPath(path, i)
			d.pos[p] = Position{Path: p, Line: it.Line, Col: it.Column}
		}
		if it.Kind != yaml.ScalarNode {
			d.errorf(it, p, "expected a key part, got %s", describe(it))
			continue
		}
		part, err := ParseKeyPart(it.Value)
		if err != nil {
			d.errorf(it, p, "%v", err)
			continue
		}
		out = append(out, part)
	}
	*k = out
}

// Validate requires at least one limit and checks each one's name across the document.
func (s *RateLimitStage) Validate(v *Validator, path string) {
	if len(s.Limits) == 0 {
		v.Errorf(joinPath(path, "limits"), "at least one limit is required")
	}
	phase := stagePhase(path)
	first := firstRateLimits(v.Document())
	for i := range s.Limits {
		s.Limits[i].validate(v, indexPath(joinPath(path, "limits"), i), phase, first)
	}
}

func (r *RateLimitRule) validate(v *Validator, path string, phase Phase, first map[string]rateLimitDef) {
	checkName(v, joinPath(path, "name"), "limit name", r.Name)
	if def, ok := first[r.Name]; ok && r.Name != "" && def.path != path && !def.rule.sameLimit(r) {
		v.Errorf(joinPath(path, "name"), "limit name %q is already used by %s for a different limit; limits with one name share counters", r.Name, def.path)
	}
	if r.Rate.Count == 0 {
		v.Errorf(joinPath(path, "rate"), "rate is required, such as 100/s")
	}
	if r.Burst < 0 || r.Burst > maxRateCount {
		v.Errorf(joinPath(path, "burst"), "burst must be from 0 to %d", maxRateCount)
	}
	if !oneOf(r.OnStoreError, OnStoreErrorLocal, OnStoreErrorAllow, OnStoreErrorDeny) {
		v.Errorf(joinPath(path, "on_store_error"), "invalid on_store_error %q: expected local, allow or deny", r.OnStoreError)
	}
	seen := map[string]bool{}
	headers := 0
	for j, p := range r.Key {
		kp := joinPath(path, "key")
		if v.Has(indexPath(kp, j)) {
			kp = indexPath(kp, j)
		}
		switch {
		case seen[p.String()]:
			v.Errorf(kp, "key part %s is listed twice", p)
		case p.NeedsIdentity() && phase == PhaseInspect:
			v.Errorf(kp, "key part %s needs the identity: put this limit in the limit phase", p)
		case p.Kind == KeyHeader && headers > 0:
			v.Errorf(kp, "a limit is keyed by at most one header")
		}
		seen[p.String()] = true
		if p.Kind == KeyHeader {
			headers++
		}
	}
}

// sameLimit reports whether two rules define the same counters.
func (r *RateLimitRule) sameLimit(o *RateLimitRule) bool {
	if r.Rate != o.Rate || r.Burst != o.Burst || len(r.Key) != len(o.Key) {
		return false
	}
	for i := range r.Key {
		if r.Key[i] != o.Key[i] {
			return false
		}
	}
	return true
}

// rateLimitDef is the first definition of a limit name in the document.
type rateLimitDef struct {
	path string
	rule *RateLimitRule
}

// firstRateLimits maps every limit name to its first definition, in file order.
func firstRateLimits(doc *Document) map[string]rateLimitDef {
	out := map[string]rateLimitDef{}
	for _, name := range doc.PolicyNames() {
		pol := doc.Policies[name]
		for _, ph := range pol.Phases() {
			for i := range ph.Stages {
				rl, ok := ph.Stages[i].Spec.(*RateLimitStage)
				if !ok {
					continue
				}
				at := joinPath(indexPath(joinPath(joinPath("policies", name), string(ph.Phase)), i), "ratelimit")
				for j := range rl.Limits {
					if _, dup := out[rl.Limits[j].Name]; !dup {
						out[rl.Limits[j].Name] = rateLimitDef{indexPath(joinPath(at, "limits"), j), &rl.Limits[j]}
					}
				}
			}
		}
	}
	return out
}

// stagePhase returns the phase of the stage spec at path
// ("policies.api.inspect[0].ratelimit" -> inspect).
func stagePhase(path string) Phase {
	p := parentPath(parentPath(path))
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		p = p[i+1:]
	}
	return Phase(p)
}
