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
	return gcra(tat, now, cost, lim, int64(lim.Interval()))
}

// gcra is GCRA with the emission interval t of lim already computed.
func gcra(tat, now int64, cost uint64, lim Limit, t int64) (int64, Result) {
	burst := lim.EffectiveBurst()
	tau := int64(burst) * t
	res := Result{Limit: lim}
	base := max(tat, now)
	if cost > burst {
		// Never admissible: report when the key is idle again.
		res.ResetAfter = time.Duration(base - now)
		res.RetryAfter = max(res.ResetAfter, time.Duration(t))
		res.Remaining = uint64(max(now+tau-base, 0) / t)
		return tat, res
	}
	next := base + int64(cost)*t
	if allowAt := next - tau; now < allowAt {
		res.RetryAfter = time.Duration(allowAt - now)
		res.ResetAfter = time.Duration(base - now)
		res.Remaining = uint64(max(now+tau-base, 0) / t)
		return tat, res
	}
	res.Allowed = true
	res.ResetAfter = time.Duration(next - now)
	res.Remaining = uint64((now + tau - next) / t)
	return next, res
}
