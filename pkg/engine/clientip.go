package engine

import (
	"net/netip"
	"strings"
)

// ClientIP resolves the client address for rules and limits (PROXY.md §16): the TCP
// peer, unless the peer is a trusted proxy, in which case X-Forwarded-For is walked
// from the right and the first hop that is not itself trusted is the client. The
// left-most entry is never believed on its own: a client can write anything there.
// A malformed hop stops the walk and yields the last trusted address seen.
//
// xff holds every X-Forwarded-For header line in order; each may be a comma list.
func ClientIP(peer netip.Addr, xff []string, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap()
	if len(trusted) == 0 || !IsTrusted(peer, trusted) {
		return peer
	}
	client := peer
	WalkForwardedFor(xff, func(hop netip.Addr) bool {
		client = hop
		return IsTrusted(hop, trusted)
	})
	return client
}

// WalkForwardedFor visits the X-Forwarded-For hops from the right (the nearest hop
// first), unmapped, until visit returns false or a hop is malformed; it reports false
// when a malformed hop ended the walk. xff holds every header line in order; each may
// be a comma list. It does not allocate.
func WalkForwardedFor(xff []string, visit func(hop netip.Addr) bool) bool {
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				hop, line = line[j+1:], line[:j]
			} else {
				hop, line = line, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return false
			}
			if !visit(a.Unmap()) {
				return true
			}
		}
	}
	return true
}

// parseHop reads one X-Forwarded-For hop: an address, or one with a port as some load
// balancers write it ("198.51.100.7:4711", "[2001:db8::1]:443"), or a bracketed IPv6
// address ("[2001:db8::1]"). Read as malformed, such hops stopped the walk at the load
// balancer, and every client behind it shared its address for limits and bans.
func parseHop(hop string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr(), true
	}
	if len(hop) > 2 && hop[0] == '[' && hop[len(hop)-1] == ']' {
		if a, err := netip.ParseAddr(hop[1 : len(hop)-1]); err == nil && a.Is6() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// IsTrusted reports whether a is in one of the trusted prefixes.
func IsTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
