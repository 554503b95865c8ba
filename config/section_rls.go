package config

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// RLS configures Envoy's rate limit service on the gRPC listener, in the shape of
// envoyproxy/ratelimit: domains with nested descriptors. It reloads with the document.
type RLS struct {
	Domains []RLSDomain `yaml:"domains"`
	// HeadersOnOK adds RateLimit-Policy and RateLimit to OK answers too (they are
	// always on OVER_LIMIT answers).
	HeadersOnOK bool `yaml:"headers_on_ok"`
}

// Validate reports domains defined twice.
func (r *RLS) Validate(v *Validator, path string) {
	checkUnique(v, joinPath(path, "domains"), "domain", "domain", r.Domains, func(d *RLSDomain) string { return d.Domain })
}

// RLSDomain is one domain: the domain Envoy sends and its descriptor tree.
type RLSDomain struct {
	Domain      string          `yaml:"domain"`
	Descriptors []RLSDescriptor `yaml:"descriptors"`
}

// Validate requires a name and checks the first level of descriptors.
func (d *RLSDomain) Validate(v *Validator, path string) {
	if d.Domain == "" {
		v.Errorf(joinPath(path, "domain"), "domain is required")
	}
	checkDescriptorLevel(v, joinPath(path, "descriptors"), d.Descriptors)
}

// RLSDescriptor matches one entry of a request descriptor: Key, and Value when set
// (without Value, every value matches and is counted separately).
type RLSDescriptor struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
	// RateLimit limits request descriptors whose last entry lands here; nil: none.
	RateLimit *RLSRateLimit `yaml:"rate_limit"`
	// ShadowMode counts and reports without ever answering OVER_LIMIT.
	ShadowMode bool `yaml:"shadow_mode"`
	// Descriptors match the next entry.
	Descriptors RLSDescriptors `yaml:"descriptors"`
}

// Validate requires a key, refuses a wildcard value, and checks the next level.
func (d *RLSDescriptor) Validate(v *Validator, path string) {
	if d.Key == "" {
		v.Errorf(joinPath(path, "key"), "key is required")
	}
	if strings.HasSuffix(d.Value, "*") {
		// envoyproxy/ratelimit reads a trailing '*' as a prefix wildcard; matched
		// literally, a configuration ported from it would silently never limit.
		v.Errorf(joinPath(path, "value"), "value %q ends in '*': prefix wildcards are not supported (list the values, or omit value to count each value separately)", d.Value)
	}
	checkDescriptorLevel(v, joinPath(path, "descriptors"), d.Descriptors.List)
}

// RLSDescriptors is a nested descriptor list. It is a struct so the document model is
// not a recursive type (the reference documentation is generated from the model).
type RLSDescriptors struct {
	List []RLSDescriptor
}

func (ds *RLSDescriptors) decodeYAML(d *decoder, path string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	d.value(path, n, valueOf(&ds.List))
}

// Validate validates each nested descriptor, which the validator does not reach by
// itself through an untagged field.
func (ds *RLSDescriptors) Validate(v *Validator, path string) {
	for i := range ds.List {
		v.walk(indexPath(path, i), reflect.ValueOf(&ds.List[i]))
	}
}

// RLSRateLimit is a descriptor's limit: RequestsPerUnit per Unit.
type RLSRateLimit struct {
	// Name is reported in current_limit and the RateLimit headers; default derived
	// from the domain and descriptor path.
	Name string `yaml:"name"`
	// Unit is second, minute, hour, day, week, month (30 days) or year (365 days).
	Unit            string `yaml:"unit"`
	RequestsPerUnit uint32 `yaml:"requests_per_unit"`
	// Unlimited matches the descriptor but never limits it.
	Unlimited bool `yaml:"unlimited"`
	// OnStoreError is local (default, also when empty), allow or deny.
	OnStoreError string `yaml:"on_store_error"`
}

var rlsUnits = []string{"second", "minute", "hour", "day", "week", "month", "year"}

// Validate checks the unit and count, or that an unlimited limit has neither.
func (r *RLSRateLimit) Validate(v *Validator, path string) {
	if r.Name != "" {
		checkName(v, joinPath(path, "name"), "limit name", r.Name)
	}
	if r.OnStoreError != "" && !oneOf(r.OnStoreError, OnStoreErrorLocal, OnStoreErrorAllow, OnStoreErrorDeny) {
		v.Errorf(joinPath(path, "on_store_error"), "invalid on_store_error %q: expected local, allow or deny", r.OnStoreError)
	}
	if r.Unlimited {
		if r.Unit != "" || r.RequestsPerUnit != 0 {
			v.Errorf(path, "an unlimited limit takes no unit or requests_per_unit")
		}
		return
	}
	if !oneOf(strings.ToLower(r.Unit), rlsUnits...) {
		v.Errorf(joinPath(path, "unit"), "invalid unit %q: expected %s", r.Unit, strings.Join(rlsUnits, ", "))
	}
	if r.RequestsPerUnit == 0 {
		v.Errorf(joinPath(path, "requests_per_unit"), "requests_per_unit must be positive (or set unlimited: true)")
	}
	if strings.EqualFold(r.Unit, "second") && r.RequestsPerUnit > 1_000_000_000 {
		v.Errorf(joinPath(path, "requests_per_unit"), "requests_per_unit %d per second is more than one request per nanosecond", r.RequestsPerUnit)
	}
}

// checkDescriptorLevel reports two descriptors of one level that match the same
// entries: like envoyproxy/ratelimit, a descriptor is known as key_value (or key).
func checkDescriptorLevel(v *Validator, path string, ds []RLSDescriptor) {
	first := map[string]int{}
	for i, d := range ds {
		if d.Key == "" {
			continue
		}
		k := d.Key
		if d.Value != "" {
			k += "_" + d.Value
		}
		if j, dup := first[k]; dup {
			v.Errorf(indexPath(path, i), "descriptor %s is defined twice at this level (first is %s)", k, indexPath(path, j))
			continue
		}
		first[k] = i
	}
}
