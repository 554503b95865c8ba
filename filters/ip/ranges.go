package ip

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// u128 is an address as a 128-bit unsigned integer (IPv4 uses the low 32 bits).
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// next returns a+1 and whether it did not overflow.
func (a u128) next() (u128, bool) {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
		if hi == 0 {
			return u128{}, false
		}
	}
	return u128{hi, lo}, true
}

// span is an inclusive address range.
type span struct{ first, last u128 }

// ranges is a set of addresses: sorted, disjoint, non-adjacent spans per family.
type ranges struct{ v4, v6 []span }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// spanOf returns the addresses of p, a canonical prefix.
func spanOf(p netip.Prefix) span {
	first := toU128(p.Addr())
	last := first
	width := 128
	if p.Addr().Is4() {
		width = 32
	}
	host := width - p.Bits() // number of host bits, 0..128
	switch {
	case host >= 64:
		last.lo = ^uint64(0)
		last.hi |= uint64(1)<<(host-64) - 1 // host-64 == 64 yields all ones
	default:
		last.lo |= uint64(1)<<host - 1
	}
	return span{first, last}
}

// normalize validates p and turns an IPv4-mapped IPv6 prefix into its IPv4 form.
func normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, errors.New("invalid prefix")
	}
	if p.Masked() != p {
		return p, fmt.Errorf("prefix %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// compile builds the range set of prefixes.
func compile(prefixes []netip.Prefix) (ranges, error) {
	var r ranges
	var errs []error
	for i, p := range prefixes {
		p, err := normalize(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%d: %w", i, err))
			continue
		}
		if p.Addr().Is4() {
			r.v4 = append(r.v4, spanOf(p))
		} else {
			r.v6 = append(r.v6, spanOf(p))
		}
	}
	if len(errs) > 0 {
		return ranges{}, errors.Join(errs...)
	}
	r.v4, r.v6 = merge(r.v4), merge(r.v6)
	return r, nil
}

// merge sorts spans and joins overlapping and adjacent ones.
func merge(s []span) []span {
	if len(s) == 0 {
		return nil
	}
	slices.SortFunc(s, func(a, b span) int { return a.first.cmp(b.first) })
	out := s[:1]
	for _, x := range s[1:] {
		cur := &out[len(out)-1]
		after, ok := cur.last.next()
		if !ok || x.first.cmp(after) <= 0 { // overlaps or touches cur
			if x.last.cmp(cur.last) > 0 {
				cur.last = x.last
			}
			continue
		}
		out = append(out, x)
	}
	return slices.Clip(out)
}

// contains reports whether a (unmapped, without zone) is in the set.
func (r *ranges) contains(a netip.Addr) bool {
	s := r.v6
	if a.Is4() {
		s = r.v4
	}
	x := toU128(a)
	// Find the first span starting after x; the one before it is the only candidate.
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].first.cmp(x) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && x.cmp(s[lo-1].last) <= 0
}
