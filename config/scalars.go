package config

import (
	"net/netip"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

// decodeSpecialScalar decodes the library types the document uses (durations, RFC 3339
// times, CIDRs). It reports whether v was one of them.
func decodeSpecialScalar(d *decoder, path string, n *yaml.Node, v reflect.Value) bool {
	switch v.Type() {
	case durationType:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.errorf(n, path, "expected a duration such as 5s or 1m30s, got %s", describe(n))
			return true
		}
		dur, err := time.ParseDuration(n.Value)
		switch {
		case err != nil:
			d.errorf(n, path, "expected a duration such as 5s or 1m30s, got %s", describe(n))
		case dur < 0:
			d.errorf(n, path, "a duration must not be negative, got %s", n.Value)
		default:
			v.SetInt(int64(dur))
		}
	case timeType:
		t, err := time.Parse(time.RFC3339, n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, path, "expected an RFC 3339 time such as 2027-01-01T00:00:00Z, got %s", describe(n))
			return true
		}
		v.Set(reflect.ValueOf(t))
	case prefixType:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a CIDR such as 10.0.0.0/8, got %s", describe(n))
			return true
		}
		p, msg := parseCIDR(n.Value)
		if msg != "" {
			d.errorf(n, path, "%s", msg)
			return true
		}
		v.Set(reflect.ValueOf(p))
	default:
		return false
	}
	return true
}

// parseCIDR parses a CIDR; a bare address means a single host (/32 or /128). It
// returns a message instead of a prefix when s is not acceptable, including a prefix
// with host bits set (10.0.0.5/8), which is almost always a mistake.
func parseCIDR(s string) (netip.Prefix, string) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, "invalid CIDR " + quote(s) + ": expected an address or address/bits such as 10.0.0.0/8"
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, "invalid CIDR " + quote(s) + ": expected an address or address/bits such as 10.0.0.0/8"
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, "invalid CIDR " + quote(s) + ": write IPv4 ranges in IPv4 form"
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, "invalid CIDR " + quote(s) + ": host bits are set; did you mean " + m.String() + "?"
	}
	return p, ""
}

// decodeScalar decodes strings, booleans and numbers with YAML's own resolution of
// the scalar, so "yes" is not a boolean and "5s" is not an integer.
func decodeScalar(d *decoder, path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a single value, got %s", describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.ShortTag() != "!!int" || octal11(n.Value) || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.errorf(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.ShortTag() != "!!int" || octal11(n.Value) || n.Decode(&u) != nil || v.OverflowUint(u) {
			d.errorf(n, path, "expected a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, path, "internal: unsupported field type %s", v.Type())
	}
}

func quote(s string) string {
	return describe(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
}

// octal11 reports a YAML 1.1 octal spelling, a decimal-looking integer with a leading
// zero ("0100"): yaml.v3 reads it as octal (64), YAML 1.2 and most readers as 100.
// Such a value is refused rather than read either way; 0o100 and 0x40 are explicit.
func octal11(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if len(s) < 2 || s[0] != '0' {
		return false
	}
	for _, c := range s[1:] {
		if (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
