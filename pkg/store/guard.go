package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Policy says what a limit does when the shared store fails (on_store_error).
type Policy uint8

const (
	// PolicyLocal decides with the local memory limiter at this replica's share of the
	// rate (the default).
	PolicyLocal Policy = iota
	// PolicyAllow admits the request.
	PolicyAllow
	// PolicyDeny refuses it: Take returns an error wrapping ErrUnavailable.
	PolicyDeny
)

var policyNames = [...]string{"local", "allow", "deny"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy parses "local", "allow" or "deny"; "" means local.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return PolicyLocal, nil
	}
	for i, n := range policyNames {
		if n == s {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown store failure policy %q (want local, allow or deny)", s)
}

// DefaultCooldown is how long a Guard stops trying a failed store.
const DefaultCooldown = time.Second

// GuardOptions configures a Guard. Hooks may be nil; they run on the request path and
// must be fast (a counter increment, a sampled log line).
type GuardOptions struct {
	// Replicas is how many replicas share the store's limits; the local fallback admits
	// 1/Replicas of each limit. 0 means 1.
	Replicas int
	// Cooldown is how long after a failure calls skip the store and go straight to the
	// failure policy; then one call probes the store again. 0 means DefaultCooldown.
	// A dead store thus costs one store timeout per Cooldown, not one per request.
	Cooldown time.Duration
	// Clock returns the current time; nil means time.Now. The breaker only subtracts
	// its readings, so with time.Now a wall-clock step does not change a cooldown.
	Clock func() time.Time
	// OnError is called for each failed store call (op is "take", "once", "incr",
	// "count", "ban" or "banned").
	OnError func(op string, err error)
	// OnFallback is called for each decision made without the store.
	OnFallback func(op string, p Policy)
	// OnState is called when the store becomes unavailable (false) or recovers (true).
	OnState func(available bool)
}

// Guard puts a failure policy and a circuit breaker in front of a shared Store, with
// a local Memory store as the fallback. It is safe for concurrent use. Recovery is
// automatic: after Cooldown, the next call tries the store again.
type Guard struct {
	primary   Store
	local     *Memory
	o         GuardOptions
	base      time.Time    // the Clock's reading at NewGuard; the breaker's times are offsets from it
	openUntil atomic.Int64 // nanoseconds after base until which the store is skipped; 0: closed
	probing   atomic.Bool  // one call is probing a half-open breaker
}

var _ Store = (*Guard)(nil)

// errOpen is the error behind fallbacks while the breaker is open.
var errOpen = errors.New("circuit open after a recent failure")

// NewGuard returns a Guard over primary with local as the fallback.
func NewGuard(primary Store, local *Memory, o GuardOptions) *Guard {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Cooldown <= 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Guard{primary: primary, local: local, o: o, base: o.Clock()}
}

// Available reports whether the breaker is closed (the store is believed healthy).
func (g *Guard) Available() bool { return g.openUntil.Load() == 0 }

// Limiter returns a Limiter that applies policy p when the store fails.
func (g *Guard) Limiter(p Policy) Limiter { return guardedLimiter{g: g, p: p} }

type guardedLimiter struct {
	g *Guard
	p Policy
}

func (l guardedLimiter) Take(ctx context.Context, key string, cost uint64, lim Limit) (Result, error) {
	return l.g.take(ctx, key, cost, lim, l.p)
}

// Take implements Limiter with PolicyLocal.
func (g *Guard) Take(ctx context.Context, key string, cost uint64, lim Limit) (Result, error) {
	return g.take(ctx, key, cost, lim, PolicyLocal)
}

func (g *Guard) take(ctx context.Context, key string, cost uint64, lim Limit, p Policy) (Result, error) {
	if !lim.Valid() {
		return Result{}, ErrInvalidLimit
	}
	err := errOpen
	if use, probe := g.try(); use {
		var res Result
		res, err = g.primary.Take(ctx, key, cost, lim)
		if !g.failed(ctx, "take", err, probe) {
			return res, err
		}
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if g.o.OnFallback != nil {
		g.o.OnFallback("take", p)
	}
	switch p {
	case PolicyAllow:
		b := lim.EffectiveBurst()
		return Result{Allowed: true, Remaining: b - min(b, cost), Limit: lim}, nil
	case PolicyDeny:
		return Result{Limit: lim, RetryAfter: g.o.Cooldown}, fmt.Errorf("rate limit store: %w: %w", ErrUnavailable, err)
	}
	return g.local.Take(ctx, key, cost, LocalShare(lim, g.o.Replicas))
}

// LocalShare returns one replica's share of lim among replicas: the same rate over a
// period replicas times longer (or the rate divided when it divides evenly), and the
// burst divided, rounded up.
func LocalShare(lim Limit, replicas int) Limit {
	if replicas <= 1 {
		return lim
	}
	r := uint64(replicas)
	share := Limit{Rate: lim.Rate, Period: lim.Period, Burst: max(1, (lim.EffectiveBurst()+r-1)/r)}
	if lim.Rate%r == 0 {
		share.Rate /= r
	} else {
		share.Period *= time.Duration(r)
	}
	if !share.Valid() {
		return lim
	}
	return share
}

// Once implements OnceSet. It has no local fallback: replay protection across
// replicas cannot be decided locally, so a failure returns an error wrapping
// ErrUnavailable and the caller's failure policy applies.
func (g *Guard) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	err := errOpen
	if use, probe := g.try(); use {
		var first bool
		first, err = g.primary.Once(ctx, key, ttl)
		if !g.failed(ctx, "once", err, probe) {
			return first, err
		}
	}
	return false, fmt.Errorf("once-set store: %w: %w", ErrUnavailable, err)
}

// Incr implements Counter, counting locally while the store fails.
func (g *Guard) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if use, probe := g.try(); use {
		n, err := g.primary.Incr(ctx, key, ttl)
		if !g.failed(ctx, "incr", err, probe) {
			return n, err
		}
	}
	g.fallback("incr")
	return g.local.Incr(ctx, key, ttl)
}

// Count implements Counter, reading the local count while the store fails.
func (g *Guard) Count(ctx context.Context, key string) (int64, error) {
	if use, probe := g.try(); use {
		n, err := g.primary.Count(ctx, key)
		if !g.failed(ctx, "count", err, probe) {
			return n, err
		}
	}
	g.fallback("count")
	return g.local.Count(ctx, key)
}

// Ban implements BanList. While the store fails the ban is recorded locally only.
func (g *Guard) Ban(ctx context.Context, key string, ttl time.Duration) error {
	if use, probe := g.try(); use {
		err := g.primary.Ban(ctx, key, ttl)
		if !g.failed(ctx, "ban", err, probe) {
			return err
		}
	}
	g.fallback("ban")
	return g.local.Ban(ctx, key, ttl)
}

// Banned implements BanList, consulting the local list while the store fails.
func (g *Guard) Banned(ctx context.Context, key string) (bool, time.Duration, error) {
	if use, probe := g.try(); use {
		b, ttl, err := g.primary.Banned(ctx, key)
		if !g.failed(ctx, "banned", err, probe) {
			return b, ttl, err
		}
	}
	g.fallback("banned")
	return g.local.Banned(ctx, key)
}

func (g *Guard) fallback(op string) {
	if g.o.OnFallback != nil {
		g.o.OnFallback(op, PolicyLocal)
	}
}

// elapsed is the time since NewGuard in nanoseconds. It is a difference of two Clock
// readings (Time.Sub), so with time.Now it is measured on the monotonic clock: a step
// of the wall clock (NTP) neither stretches nor cuts a cooldown, as a deadline kept in
// Unix time would.
func (g *Guard) elapsed() int64 { return int64(g.o.Clock().Sub(g.base)) }

// try reports whether this call may use the store: always while the breaker is
// closed, never while it is open, and for exactly one caller, the probe, once the
// cooldown passed.
func (g *Guard) try() (use, probe bool) {
	until := g.openUntil.Load()
	if until == 0 {
		return true, false
	}
	if g.elapsed() < until {
		return false, false
	}
	probe = g.probing.CompareAndSwap(false, true)
	return probe, probe
}

// failed records the outcome of a store call (probe: the call try admitted after the
// cooldown) and reports whether it was a store failure. Errors caused by the caller
// (its context ended, an invalid limit) are not. Only the probe's outcome changes the
// breaker's probing state: a call that was in flight when the store failed finishes
// late, and neither its success (stale: closing on it would send every caller back to
// a dead store) nor its caller's giving up may close the breaker or free the probe.
func (g *Guard) failed(ctx context.Context, op string, err error, probe bool) bool {
	switch {
	case err == nil:
		if probe {
			g.openUntil.Store(0)
			g.probing.Store(false)
			if g.o.OnState != nil {
				g.o.OnState(true)
			}
		}
		return false
	case errors.Is(err, ErrInvalidLimit), ctx.Err() != nil:
		if probe {
			g.probing.Store(false)
		}
		return false
	}
	if g.o.OnError != nil {
		g.o.OnError(op, err)
	}
	was := g.openUntil.Swap(max(g.elapsed()+int64(g.o.Cooldown), 1))
	if probe {
		g.probing.Store(false)
	}
	if was == 0 && g.o.OnState != nil {
		g.o.OnState(false)
	}
	return true
}
