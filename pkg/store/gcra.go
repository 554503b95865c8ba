package store

import (
	"math"
	"math/bits"
	"time"
)

// maxTolerance caps Burst·T so that every sum in GCRA fits an int64 of nanoseconds
// with room to spare (about 73 years).
const maxTolerance = math.MaxInt64 / 4

// Valid reports whether l can be used: a positive rate, a period of at least one
// nanosecond per unit, and a burst tolerance (Burst·Period/Rate) under ~73 years.
func (l Limit) Valid() bool {
	_, ok := l.interval()
	return ok
}

// interval returns the emission interval of a Valid limit in nanoseconds, and false
// for an invalid one: one division, on the hot path of every Take.
func (l Limit) interval() (int64, bool) {
	if l.Rate == 0 || l.Period <= 0 || uint64(l.Period) < l.Rate {
		return 0, false
	}
	t := l.Interval()
	hi, tol := bits.Mul64(l.EffectiveBurst(), uint64(t))
	return int64(t), hi == 0 && tol <= maxTolerance
}

// GCRA makes one decision for a key whose theoretical arrival time is tat, at time now
// (both in nanoseconds on one clock; tat 0 or any tat <= now means idle). It returns
// the TAT to store (unchanged when refused) and the Result. lim must be Valid.
//
// It is the reference implementation: pkg/valkeystore's script computes the same in
// microseconds.
func GCRA(tat, now int64, cost uint64, lim Limit) (int64, Result) {
	var res Result
	next := gcra(tat, now, cost, lim, emission{t: int64(lim.Interval())}, &res)
	return next, res
}

// emission is a limit's emission interval t in nanoseconds and, when inv is not 0,
// 1/t, so that the remaining count is a multiplication instead of a 64-bit division
// (Memory caches it per shard; a division was a fifth of a Take).
type emission struct {
	t   int64
	inv float64
}

func newEmission(t int64) emission { return emission{t: t, inv: 1 / float64(t)} }

// units returns n/e.t (n >= 0), exactly: the float estimate is corrected by one either
// way; a dividend of 2^53 or more, or an estimate off by more than one, is divided.
func (e emission) units(n int64) int64 {
	if e.inv == 0 || n >= 1<<53 { // beyond 2^53 float64 does not even hold n exactly
		return n / e.t
	}
	q := int64(float64(n) * e.inv)
	switch r := n - q*e.t; {
	case r >= 0 && r < e.t:
		return q
	case r < 0 && r+e.t >= 0:
		return q - 1
	case r >= e.t && r < 2*e.t:
		return q + 1
	}
	return n / e.t
}

// gcra is GCRA with lim's emission interval already computed; it fills res and returns
// the TAT to store.
func gcra(tat, now int64, cost uint64, lim Limit, e emission, res *Result) int64 {
	t := e.t
	burst := lim.EffectiveBurst()
	tau := int64(burst) * t
	*res = Result{Limit: lim}
	base := max(tat, now)
	if cost > burst {
		// Never admissible: report when the key is idle again.
		res.ResetAfter = time.Duration(base - now)
		res.RetryAfter = max(res.ResetAfter, time.Duration(t))
		res.Remaining = uint64(e.units(max(now+tau-base, 0)))
		return tat
	}
	next := base + int64(cost)*t
	if allowAt := next - tau; now < allowAt {
		res.RetryAfter = time.Duration(allowAt - now)
		res.ResetAfter = time.Duration(base - now)
		res.Remaining = uint64(e.units(max(now+tau-base, 0)))
		return tat
	}
	res.Allowed = true
	res.ResetAfter = time.Duration(next - now)
	res.Remaining = uint64(e.units(now + tau - next))
	return next
}
