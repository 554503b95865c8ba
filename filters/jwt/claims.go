package jwt

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// registered holds the RFC 7519 §4.1 claims the verifier checks.
type registered struct {
	iss, sub, jti          string
	exp, nbf, iat          int64 // Unix seconds
	hasExp, hasNbf, hasIat bool
}

// readRegistered extracts and type-checks iss, jti, exp, nbf and iat. The subject is
// read from the configured claim by the caller.
func readRegistered(c map[string]any) (registered, error) {
	var r registered
	var ok bool
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"iss", &r.iss}, {"jti", &r.jti}} {
		if v, has := c[f.name]; has {
			if *f.dst, ok = v.(string); !ok {
				return r, errClaimType
			}
		}
	}
	for _, f := range [...]struct {
		name string
		dst  *int64
		has  *bool
	}{{"exp", &r.exp, &r.hasExp}, {"nbf", &r.nbf, &r.hasNbf}, {"iat", &r.iat, &r.hasIat}} {
		if v, has := c[f.name]; has {
			if *f.dst, ok = numericDate(v); !ok {
				return r, errClaimType
			}
			*f.has = true
		}
	}
	return r, nil
}

// numericDate converts a JSON number to Unix seconds, truncating fractions.
func numericDate(v any) (int64, bool) {
	f, ok := v.(float64)
	if !ok || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// checkTimes applies exp, nbf and iat at now with skew.
func checkTimes(r *registered, now time.Time, skew time.Duration, allowNoExp bool) error {
	t := now.Unix()
	s := int64(skew / time.Second)
	switch {
	case r.hasExp && t >= r.exp+s:
		return errExpired
	case !r.hasExp && !allowNoExp:
		return errNoExpiry
	case r.hasNbf && t+s < r.nbf:
		return errNotYetValid
	case r.hasIat && t+s < r.iat:
		return errIssuedFuture
	}
	return nil
}

// checkAudience reports whether aud (a string or an array of strings) holds one of want.
func checkAudience(aud any, want []string) error {
	switch v := aud.(type) {
	case string:
		if slices.Contains(want, v) {
			return nil
		}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return errClaimType
			}
			if slices.Contains(want, s) {
				return nil
			}
		}
	case nil:
	default:
		return errClaimType
	}
	return errAudience
}

// lookup resolves a dotted path in claims. At each level a key equal to the whole
// remaining path wins (claim names like "https://example.com/roles" contain dots);
// otherwise the path is split at its first dot. It returns nil when absent.
func lookup(c map[string]any, path string) any {
	for {
		if v, ok := c[path]; ok {
			return v
		}
		i := strings.IndexByte(path, '.')
		if i < 0 {
			return nil
		}
		next, ok := c[path[:i]].(map[string]any)
		if !ok {
			return nil
		}
		c, path = next, path[i+1:]
	}
}

// scalarText formats a string, number or boolean claim; ok is false for other types.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return "", false
}

// claimRule is a compiled ClaimRule with its precomputed failure.
type claimRule struct {
	ClaimRule
	fail *VerifyError
}

func compileRules(rules []ClaimRule) []claimRule {
	out := make([]claimRule, len(rules))
	for i, r := range rules {
		out[i] = claimRule{ClaimRule: r, fail: verr(ReasonClaim, "claim "+quoteSafe(r.Claim)+" is missing or does not match")}
	}
	return out
}

// check applies the rule to claims.
func (r *claimRule) check(c map[string]any) error {
	v := lookup(c, r.Claim)
	if v == nil || !r.matches(v) {
		return r.fail
	}
	return nil
}

func (r *claimRule) matches(v any) bool {
	if r.Equals != "" || len(r.OneOf) > 0 {
		s, ok := scalarText(v)
		if !ok || (r.Equals != "" && s != r.Equals) || (len(r.OneOf) > 0 && !slices.Contains(r.OneOf, s)) {
			return false
		}
	}
	if r.Contains == "" {
		return true
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := scalarText(e); ok && s == r.Contains {
				return true
			}
		}
	case string:
		for _, w := range strings.Fields(x) {
			if w == r.Contains {
				return true
			}
		}
	}
	return false
}
