package rls

import (
	"fmt"
	"strings"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
)

// Domain is one rate limit domain, as in envoyproxy/ratelimit's configuration: the
// domain Envoy sends and a tree of descriptors.
type Domain struct {
	Name        string
	Descriptors []Descriptor
}

// Descriptor matches one entry of a request descriptor: Key, and Value when set (a
// descriptor without Value matches any value, and each value is counted separately).
// A request descriptor is limited by the RateLimit of the node its last entry matches.
type Descriptor struct {
	Key   string
	Value string
	// RateLimit is the limit of request descriptors ending here; nil means none.
	RateLimit *RateLimit
	// ShadowMode counts and reports the limit but never answers OVER_LIMIT for it.
	ShadowMode bool
	// Descriptors match the next entry.
	Descriptors []Descriptor
}

// RateLimit is a limit: RequestsPerUnit per Unit.
type RateLimit struct {
	// Name is reported in current_limit and in the RateLimit headers; "" means a name
	// derived from the descriptor path.
	Name string
	// Unit is second, minute, hour, day, week, month (30 days) or year (365 days),
	// case-insensitive.
	Unit            string
	RequestsPerUnit uint32
	// Unlimited matches the descriptor but never limits it.
	Unlimited bool
	// OnStoreError is the failure policy of this limit.
	OnStoreError store.Policy
}

// unitPeriods maps unit names to periods and Envoy's enum values (rls.proto).
var unitPeriods = map[string]struct {
	period time.Duration
	enum   int32
}{
	"second": {time.Second, 1},
	"minute": {time.Minute, 2},
	"hour":   {time.Hour, 3},
	"day":    {24 * time.Hour, 4},
	"month":  {30 * 24 * time.Hour, 5},
	"year":   {365 * 24 * time.Hour, 6},
	"week":   {7 * 24 * time.Hour, 7},
}

// node is a compiled Descriptor.
type node struct {
	limit    *compiledLimit // nil: no limit ends here
	children map[string]*node
}

// compiledLimit is a compiled RateLimit.
type compiledLimit struct {
	name      string // reported name
	scope     string // store key scope: hash tag and namespace, no ':'
	rpu       uint32
	unit      int32
	lim       store.Limit
	unlimited bool
	shadow    bool
	policy    store.Policy
	policyHdr string // RateLimit-Policy item
}

// compile builds the lookup trees of domains.
func compile(domains []Domain) (map[string]map[string]*node, error) {
	out := make(map[string]map[string]*node, len(domains))
	for _, d := range domains {
		if d.Name == "" {
			return nil, fmt.Errorf("rls: domain without a name")
		}
		if _, dup := out[d.Name]; dup {
			return nil, fmt.Errorf("rls: domain %q defined twice", d.Name)
		}
		level, err := compileLevel(d.Descriptors, d.Name, nil)
		if err != nil {
			return nil, err
		}
		out[d.Name] = level
	}
	return out, nil
}

func compileLevel(ds []Descriptor, domain string, path []string) (map[string]*node, error) {
	level := make(map[string]*node, len(ds))
	for _, d := range ds {
		if d.Key == "" {
			return nil, fmt.Errorf("rls: domain %s: descriptor without a key under %v", domain, path)
		}
		if strings.HasSuffix(d.Value, "*") {
			return nil, fmt.Errorf("rls: domain %s: descriptor %s value %q: prefix wildcards are not supported", domain, d.Key, d.Value)
		}
		k := d.Key
		if d.Value != "" {
			k += "_" + d.Value
		}
		if _, dup := level[k]; dup {
			return nil, fmt.Errorf("rls: domain %s: descriptor %s defined twice under %v", domain, k, path)
		}
		p := append(path[:len(path):len(path)], k)
		n := &node{}
		if d.RateLimit != nil {
			l, err := compileLimit(d.RateLimit, d.ShadowMode, domain, p)
			if err != nil {
				return nil, err
			}
			n.limit = l
		}
		if len(d.Descriptors) > 0 {
			children, err := compileLevel(d.Descriptors, domain, p)
			if err != nil {
				return nil, err
			}
			n.children = children
		}
		level[k] = n
	}
	return level, nil
}

func compileLimit(rl *RateLimit, shadow bool, domain string, path []string) (*compiledLimit, error) {
	name := rl.Name
	if name == "" {
		name = domain + "." + strings.Join(path, ".")
	}
	l := &compiledLimit{
		name:      name,
		scope:     scopeName(domain + "." + name),
		unlimited: rl.Unlimited,
		shadow:    shadow,
		policy:    rl.OnStoreError,
	}
	if rl.Unlimited {
		return l, nil
	}
	u, ok := unitPeriods[strings.ToLower(rl.Unit)]
	if !ok || rl.RequestsPerUnit == 0 {
		return nil, fmt.Errorf("rls: domain %s: limit %s: want requests_per_unit > 0 and unit second, minute, hour, day, week, month or year (got %d per %q)",
			domain, name, rl.RequestsPerUnit, rl.Unit)
	}
	l.rpu, l.unit = rl.RequestsPerUnit, u.enum
	l.lim = store.Limit{Rate: uint64(rl.RequestsPerUnit), Period: u.period}
	if !l.lim.Valid() {
		// Above one request per nanosecond: the limiter cannot represent it, and every
		// Take would fail the whole call (which Envoy's default failure mode admits).
		return nil, fmt.Errorf("rls: domain %s: limit %s: %d per %s is more than one request per nanosecond",
			domain, name, rl.RequestsPerUnit, strings.ToLower(rl.Unit))
	}
	l.policyHdr = fmt.Sprintf("%q;q=%d;w=%d", headerName(name), rl.RequestsPerUnit, int64(u.period/time.Second))
	return l, nil
}

// scopeName makes s usable as a store key scope: no ':' (the scope separator) and no
// braces (the cluster hash tag delimiters).
func scopeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ':', '{', '}':
			return '_'
		}
		return r
	}, s)
}

// headerName makes s usable inside a structured-field string: printable ASCII without
// '"' and '\'.
func headerName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, s)
}
