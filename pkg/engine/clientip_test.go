package engine_test

import (
	"net/netip"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer ignores xff", "203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer uses right-most untrusted", "10.0.0.1", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"skips trusted hops", "10.0.0.1", []string{"198.51.100.7, 10.1.1.1", "10.2.2.2"}, "198.51.100.7"},
		{"left-most spoof is not believed", "10.0.0.1", []string{"1.1.1.1", "198.51.100.7"}, "198.51.100.7"},
		{"all trusted gives left-most seen", "10.0.0.1", []string{"10.3.3.3"}, "10.3.3.3"},
		{"no xff", "10.0.0.1", nil, "10.0.0.1"},
		{"garbage stops the walk", "10.0.0.1", []string{"198.51.100.7, junk"}, "10.0.0.1"},
		// Hops written with a port or brackets, as some load balancers do.
		{"hop with a port", "10.0.0.1", []string{"198.51.100.7:4711"}, "198.51.100.7"},
		{"IPv6 hop with brackets and a port", "10.0.0.1", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"IPv6 hop in brackets", "10.0.0.1", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"bracketed IPv4 is malformed", "10.0.0.1", []string{"[198.51.100.7]"}, "10.0.0.1"},
		{"trusted hop with a port is walked past", "10.0.0.1", []string{"198.51.100.7, 10.0.0.2:80"}, "198.51.100.7"},
		{"mapped v4 peer", "::ffff:10.0.0.1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"ipv6 client", "127.0.0.1", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, tc := range tests {
		got := engine.ClientIP(netip.MustParseAddr(tc.peer), tc.xff, trusted)
		if got.String() != tc.want {
			t.Errorf("%s: got %s want %s", tc.name, got, tc.want)
		}
	}
}
