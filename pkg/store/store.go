// Package store defines the small shared-state interfaces that filters consume (rate
// limiting, once-sets for replay protection, expiring counters and ban lists) and their
// in-memory implementation for a single replica. pkg/valkeystore implements the same
// interfaces on Valkey or Redis for replicas that must agree.
//
// # Rate limiting algorithm
//
// Limiter.Take implements GCRA (the generic cell rate algorithm, a token bucket that
// stores one timestamp per key). For a Limit of Rate requests per Period with Burst B,
// the emission interval is T = Period/Rate and the state is the theoretical arrival
// time TAT. A request of cost n at time now is admitted when
//
//	max(TAT, now) + n·T - B·T <= now
//
// and then TAT becomes max(TAT, now) + n·T. An idle key (TAT <= now) is equivalent to
// a key never seen, so idle keys can be dropped without changing any decision.
//
// Error bound. In every interval of length W (any start, not only aligned windows) the
// units admitted for one key are at most
//
//	B + W/T = B + W·Rate/Period
//
// and a client that keeps asking is never refused more than that: over W it gets at
// least W/T - 1 units once its burst is spent. The memory limiter computes in integer
// nanoseconds with T rounded up to a whole nanosecond, so it never admits more than the
// exact rate (it is stricter by under 1ns per unit), on a clock that lags the real
// time by up to ClockTick (1 ms): that widens both bounds by ClockTick·Rate/Period
// (B + (W+ClockTick)·R/P at most, (W−ClockTick)/T − 1 at least; one request either
// way at 1000/s). pkg/valkeystore computes in microseconds with TAT rounded up
// (stricter by at most 1µs per request) on the server's clock.
// TestGCRABound asserts both bounds on simulated traffic; pkg/valkeystore's
// TestAccuracyTwoReplicas asserts the upper one for two replicas sharing a server. The bound holds per key while the key stays in memory: the memory
// store keeps at most MaxKeys keys and, when full, evicts the sampled key closest to
// being idle, so under more live keys than MaxKeys an evicted key restarts with a full
// burst.
//
// Keys are opaque byte strings. Callers may pass a key that aliases a reused buffer:
// implementations must not retain a key after the call returns.
package store

import (
	"context"
	"errors"
	"time"
)

// Limit is a rate: Rate units per Period, with bursts of up to Burst units. Burst 0
// means Burst = Rate.
type Limit struct {
	Rate   uint64
	Period time.Duration
	Burst  uint64
}

// EffectiveBurst returns Burst, or Rate when Burst is 0.
func (l Limit) EffectiveBurst() uint64 {
	if l.Burst == 0 {
		return l.Rate
	}
	return l.Burst
}

// Interval returns the emission interval T = Period/Rate, rounded up to a nanosecond.
func (l Limit) Interval() time.Duration {
	r := time.Duration(l.Rate)
	return (l.Period + r - 1) / r
}

// Result is the outcome of one Take.
type Result struct {
	// Allowed is true when the cost was admitted (and consumed).
	Allowed bool
	// Remaining is how many more units would be admitted right now.
	Remaining uint64
	// RetryAfter is how long until the same request would be admitted (0 when Allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the key is fully replenished (idle).
	ResetAfter time.Duration
	// Limit is the limit that was applied (the local share when a fallback applied).
	Limit Limit
}

// Limiter admits or refuses units of cost against a per-key Limit.
type Limiter interface {
	// Take consumes cost units for key if lim admits them now. A cost of 0 only reports
	// the state. A cost above the burst is never admitted.
	Take(ctx context.Context, key string, cost uint64, lim Limit) (Result, error)
}

// OnceSet remembers keys for a while (replay protection: nonces, jti).
type OnceSet interface {
	// Once reports whether key was unseen, and marks it seen for ttl.
	Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// Counter counts events per key in a window that starts at the first event.
type Counter interface {
	// Incr adds one to key and returns the new count. The count expires ttl after the
	// first increment (a fixed window, not extended by later increments).
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// Count returns the current count of key (0 when absent or expired).
	Count(ctx context.Context, key string) (int64, error)
}

// BanList holds temporary bans.
type BanList interface {
	// Ban bans key for ttl, or keeps a current ban of key that ends later: a ban is
	// never shortened (concurrent escalations may arrive out of order). A ttl <= 0
	// lifts the ban.
	Ban(ctx context.Context, key string, ttl time.Duration) error
	// Banned reports whether key is banned and for how much longer.
	Banned(ctx context.Context, key string) (bool, time.Duration, error)
}

// Store is everything a shared-state backend provides.
type Store interface {
	Limiter
	OnceSet
	Counter
	BanList
}

// ErrUnavailable is returned (wrapped) when the shared store cannot be used and the
// failure policy says deny.
var ErrUnavailable = errors.New("store unavailable")

// ErrInvalidLimit is returned by Take for a limit that is not Valid.
var ErrInvalidLimit = errors.New("invalid limit")
