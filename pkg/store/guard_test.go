package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// flakyStore is a working Memory store that can be switched off, like a store server
// going away: every call then fails after counting the attempt.
type flakyStore struct {
	*Memory
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("connection refused")

func (f *flakyStore) Take(ctx context.Context, key string, cost uint64, lim Limit) (Result, error) {
	f.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if f.down.Load() {
		return Result{}, errDown
	}
	return f.Memory.Take(ctx, key, cost, lim)
}

func (f *flakyStore) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return 0, errDown
	}
	return f.Memory.Incr(ctx, key, ttl)
}

func (f *flakyStore) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return false, errDown
	}
	return f.Memory.Once(ctx, key, ttl)
}

func TestGuardPolicies(t *testing.T) {
	lim := Limit{Rate: 10, Period: time.Second}
	tests := []struct {
		policy  Policy
		admit   int // of 20 requests during the outage
		wantErr bool
	}{
		{PolicyLocal, 5, false}, // 10/s over 2 replicas: burst 5
		{PolicyAllow, 20, false},
		{PolicyDeny, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.policy.String(), func(t *testing.T) {
			clk := newFakeClock()
			primary := &flakyStore{Memory: NewMemory(MemoryOptions{Clock: clk.Now})}
			var errs, fallbacks atomic.Int64
			var states []bool
			g := NewGuard(primary, NewMemory(MemoryOptions{Clock: clk.Now}), GuardOptions{
				Replicas:   2,
				Clock:      clk.Now,
				OnError:    func(string, error) { errs.Add(1) },
				OnFallback: func(string, Policy) { fallbacks.Add(1) },
				OnState:    func(up bool) { states = append(states, up) },
			})
			l := g.Limiter(tc.policy)
			ctx := context.Background()
			primary.down.Store(true)
			admitted := 0
			for range 20 {
				res, err := l.Take(ctx, "k", 1, lim)
				if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrUnavailable)) {
					t.Fatalf("err = %v", err)
				}
				if res.Allowed {
					admitted++
				}
			}
			if admitted != tc.admit {
				t.Fatalf("admitted %d during outage, want %d", admitted, tc.admit)
			}
			// The breaker: one store attempt per cooldown, not one per request.
			if c := primary.calls.Load(); c != 1 || errs.Load() != 1 || fallbacks.Load() != 20 {
				t.Fatalf("store calls %d, errors %d, fallbacks %d", c, errs.Load(), fallbacks.Load())
			}
			clk.Advance(DefaultCooldown)
			l.Take(ctx, "k", 1, lim)
			if c := primary.calls.Load(); c != 2 {
				t.Fatalf("no probe after cooldown: %d calls", c)
			}
			// Recovery: the store is back, the next probe closes the breaker.
			primary.down.Store(false)
			clk.Advance(DefaultCooldown)
			if res, err := l.Take(ctx, "k", 1, lim); err != nil || !res.Allowed || res.Limit != lim {
				t.Fatalf("after recovery: %+v %v", res, err)
			}
			if !g.Available() || len(states) != 2 || states[0] || !states[1] {
				t.Fatalf("available=%v states=%v", g.Available(), states)
			}
			for range 5 {
				l.Take(ctx, "k", 1, lim)
			}
			if c := primary.calls.Load(); c != 8 {
				t.Fatalf("store not used after recovery: %d calls", c)
			}
		})
	}
}

func TestGuardCallerErrorsKeepBreakerClosed(t *testing.T) {
	primary := &flakyStore{Memory: NewMemory(MemoryOptions{})}
	g := NewGuard(primary, NewMemory(MemoryOptions{}), GuardOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	primary.down.Store(true)
	if _, err := g.Take(ctx, "k", 1, Limit{Rate: 1, Period: time.Second}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if _, err := g.Take(context.Background(), "k", 1, Limit{}); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("err = %v", err)
	}
	if !g.Available() {
		t.Fatal("a caller's error opened the breaker")
	}
}

func TestGuardCountersAndOnce(t *testing.T) {
	primary := &flakyStore{Memory: NewMemory(MemoryOptions{})}
	g := NewGuard(primary, NewMemory(MemoryOptions{}), GuardOptions{})
	ctx := context.Background()
	primary.down.Store(true)
	if n, err := g.Incr(ctx, "c", time.Minute); err != nil || n != 1 {
		t.Fatalf("Incr fallback: %d %v", n, err)
	}
	if first, err := g.Once(ctx, "n", time.Minute); first || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Once must fail closed: %v %v", first, err)
	}
}

func TestLocalShare(t *testing.T) {
	tests := []struct {
		in       Limit
		replicas int
		want     Limit
	}{
		{Limit{Rate: 10, Period: time.Second}, 1, Limit{Rate: 10, Period: time.Second}},
		{Limit{Rate: 10, Period: time.Second}, 2, Limit{Rate: 5, Period: time.Second, Burst: 5}},
		{Limit{Rate: 10, Period: time.Second, Burst: 4}, 3, Limit{Rate: 10, Period: 3 * time.Second, Burst: 2}},
		{Limit{Rate: 1, Period: time.Second}, 5, Limit{Rate: 1, Period: 5 * time.Second, Burst: 1}},
	}
	for _, tc := range tests {
		if got := LocalShare(tc.in, tc.replicas); got != tc.want {
			t.Errorf("LocalShare(%+v, %d) = %+v, want %+v", tc.in, tc.replicas, got, tc.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, s := range []string{"", "local", "allow", "deny"} {
		if _, err := ParsePolicy(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParsePolicy("open"); err == nil {
		t.Error("unknown policy accepted")
	}
}

// gatedStore hands each Take's answer to the test: the call sends a channel on
// started and returns what the test sends on it (nil: the memory store's answer).
type gatedStore struct {
	*Memory
	started chan chan error
}

func (s *gatedStore) Take(ctx context.Context, key string, cost uint64, lim Limit) (Result, error) {
	answer := make(chan error)
	s.started <- answer
	select {
	case err := <-answer:
		if err != nil {
			return Result{}, err
		}
		return s.Memory.Take(ctx, key, cost, lim)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Calls that were in flight when the store failed finish late: neither their success
// nor their caller giving up may close the breaker or let a second probe out while the
// probe is out (raised by a second reader's review).
func TestGuardIgnoresStaleCallsDuringProbe(t *testing.T) {
	clk := newFakeClock()
	primary := &gatedStore{Memory: NewMemory(MemoryOptions{Clock: clk.Now}), started: make(chan chan error)}
	g := NewGuard(primary, NewMemory(MemoryOptions{Clock: clk.Now}), GuardOptions{Cooldown: time.Second, Clock: clk.Now})
	lim := Limit{Rate: 100, Period: time.Second}
	call := func(ctx context.Context) (done chan error, answer chan error) {
		done = make(chan error, 1)
		go func() { _, err := g.Take(ctx, "k", 1, lim); done <- err }()
		select {
		case answer = <-primary.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the call never reached the store")
		}
		return done, answer
	}
	// Two calls in flight while the store is healthy; a third fails and opens the breaker.
	staleOK, staleOKAnswer := call(context.Background())
	cancelCtx, cancel := context.WithCancel(context.Background())
	staleGone, _ := call(cancelCtx)
	failing, failingAnswer := call(context.Background())
	failingAnswer <- errDown
	<-failing
	if g.Available() {
		t.Fatal("breaker closed after a failure")
	}
	// After the cooldown one call probes; it waits on the store.
	clk.Advance(2 * time.Second)
	probe, probeAnswer := call(context.Background())
	// A stale call's caller gives up: the probe is still out, so no second probe.
	cancel()
	<-staleGone
	if use, _ := g.try(); use {
		t.Fatal("a second probe was let out while the first is out")
	}
	// A stale call succeeds: the store answered a call made before it failed.
	staleOKAnswer <- nil
	<-staleOK
	if g.Available() {
		t.Fatal("a stale success closed the breaker while the probe is out")
	}
	// The probe fails: the breaker stays open; after the next cooldown a new probe
	// succeeds and closes it.
	probeAnswer <- errDown
	<-probe
	if g.Available() {
		t.Fatal("breaker closed after the probe failed")
	}
	clk.Advance(2 * time.Second)
	next, nextAnswer := call(context.Background())
	nextAnswer <- nil
	if err := <-next; err != nil || !g.Available() {
		t.Fatalf("probe after the cooldown: %v, available %v", err, g.Available())
	}
}
