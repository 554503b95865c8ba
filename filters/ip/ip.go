// Package ip allows or denies requests by client address, in the inspect phase.
//
// The address judged is engine.Request.Peer.IP, which the front-ends have already
// resolved through the configured trusted proxies (engine.ClientIP); this package never
// reads X-Forwarded-For. IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) are judged as the
// IPv4 address they carry, and a zone is ignored.
//
// Rules: a client inside any Deny prefix is denied (403 "ip.denied"), whatever Allow
// says; when Allow is non-empty, a client outside every Allow prefix is denied (403
// "ip.not_allowed"); a missing or invalid address is denied (403 "ip.invalid"), because
// a rule that cannot be evaluated must not pass.
//
// Each list is compiled at construction into sorted, merged, disjoint address ranges
// per family, so Check is a binary search: O(log n) time for n prefixes, no allocation,
// whatever the size of the lists; building is O(n log n).
package ip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Reason codes of the denials this package returns.
const (
	ReasonDenied     = "ip.denied"
	ReasonNotAllowed = "ip.not_allowed"
	ReasonInvalid    = "ip.invalid"
)

// The denials are shared and read-only, so denying allocates nothing.
var (
	denied     = engine.Deny(http.StatusForbidden, ReasonDenied, "")
	notAllowed = engine.Deny(http.StatusForbidden, ReasonNotAllowed, "")
	invalid    = engine.Deny(http.StatusForbidden, ReasonInvalid, "")
)

// Options configure a Filter. Prefixes must be canonical (no host bits set);
// IPv4-mapped IPv6 prefixes of length 96 or more are treated as the IPv4 prefix.
type Options struct {
	Allow []netip.Prefix // when non-empty, only clients inside these pass
	Deny  []netip.Prefix // clients inside these never pass
}

// Filter is the compiled allow/deny rule. It is immutable and safe for concurrent use.
type Filter struct {
	allow, deny ranges
	hasAllow    bool
}

var _ engine.Filter = (*Filter)(nil)

// New compiles opts. At least one list must be non-empty.
func New(opts Options) (*Filter, error) {
	if len(opts.Allow) == 0 && len(opts.Deny) == 0 {
		return nil, errors.New("ip: allow or deny is required")
	}
	allow, err1 := compile(opts.Allow)
	deny, err2 := compile(opts.Deny)
	if err := errors.Join(prefixed("allow", err1), prefixed("deny", err2)); err != nil {
		return nil, fmt.Errorf("ip: %w", err)
	}
	return &Filter{allow: allow, deny: deny, hasAllow: len(opts.Allow) > 0}, nil
}

func prefixed(list string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", list, err)
}

// Check denies r unless its client address passes the rules.
func (f *Filter) Check(_ context.Context, r *engine.Request, _ *engine.Decision) error {
	a := r.Peer.IP
	if !a.IsValid() {
		return invalid
	}
	a = a.Unmap().WithZone("")
	switch {
	case f.deny.contains(a):
		return denied
	case f.hasAllow && !f.allow.contains(a):
		return notAllowed
	}
	return nil
}
