package valkeystore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// TestAccuracyTwoReplicas: two independent clients (as two sidecars) share one server;
// 64 concurrent callers hammer one key for several periods. The admitted count must
// stay within the documented GCRA bound, Burst + elapsed·Rate/Period, where elapsed is
// measured around the whole run (the server's clock runs inside it).
func TestAccuracyTwoReplicas(t *testing.T) {
	srv := redisharness.Start(t)
	replicas := []*Store{newStore(t, srv, nil), newStore(t, srv, nil)}
	lim := store.Limit{Rate: 40, Period: 300 * time.Millisecond, Burst: 20}
	const (
		callers  = 64
		run      = 1200 * time.Millisecond // four periods
		maxCalls = 200_000
	)
	ctx := context.Background()
	var admitted, calls, failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(run)
	for i := range callers {
		s := replicas[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) && calls.Add(1) <= maxCalls {
				res, err := s.Take(ctx, "acc:shared", 1, lim)
				switch {
				case err != nil:
					failures.Add(1)
				case res.Allowed:
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	bound := float64(lim.EffectiveBurst()) + float64(elapsed)*float64(lim.Rate)/float64(lim.Period)
	t.Logf("%s: %d calls, %d admitted in %v (bound %.1f), %d failures",
		srv.Version(), min(calls.Load(), maxCalls), admitted.Load(), elapsed, bound, failures.Load())
	if failures.Load() != 0 {
		t.Fatalf("%d store failures", failures.Load())
	}
	if got := float64(admitted.Load()); got > bound {
		t.Fatalf("admitted %v > bound %.1f", got, bound)
	}
	if admitted.Load() < int64(lim.EffectiveBurst()) {
		t.Fatalf("admitted %d < burst %d", admitted.Load(), lim.EffectiveBurst())
	}
}

// manualClock is a clock that moves only when told (the Guard's breaker cooldown).
type manualClock struct{ ns atomic.Int64 }

func (c *manualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// outcome tallies results per phase.
type outcome struct{ allowed, refused, unavailable, other atomic.Int64 }

// TestOutage stops the server while callers run, for each failure policy, then
// restarts it and asserts recovery: the store decides again and fallbacks stop.
func TestOutage(t *testing.T) {
	for _, p := range []store.Policy{store.PolicyLocal, store.PolicyAllow, store.PolicyDeny} {
		t.Run(p.String(), func(t *testing.T) { testOutage(t, p) })
	}
}

func testOutage(t *testing.T, policy store.Policy) {
	srv := redisharness.Start(t)
	// A timeout well above a loaded machine's round trip: a slow call while the store
	// is up would count as an outage.
	s := newStore(t, srv, func(o *Options) { o.Timeout = time.Second })
	clk := &manualClock{}
	clk.ns.Store(time.Now().UnixNano())
	var storeErrors, fallbacks atomic.Int64
	local := store.NewMemory(store.MemoryOptions{Clock: clk.Now})
	g := store.NewGuard(s, local, store.GuardOptions{
		Replicas:   2,
		Clock:      clk.Now,
		OnError:    func(string, error) { storeErrors.Add(1) },
		OnFallback: func(string, store.Policy) { fallbacks.Add(1) },
	})
	l := g.Limiter(policy)
	lim := store.Limit{Rate: 20, Period: time.Hour} // no refill during the test
	ctx := context.Background()

	// Phases: 0 up, 1 down, 2 recovering, 3 recovered, 4 stopping or restarting. A call
	// whose phase changed while it ran is tallied under 4 too (any outcome but a crash).
	const workers = 8
	var phase atomic.Int32
	var results [5]outcome
	var calls atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for calls.Add(1) < 100_000 {
				select {
				case <-done:
					return
				default:
				}
				before := phase.Load()
				res, err := l.Take(ctx, "out:k", 1, lim)
				if phase.Load() != before {
					before = 4
				}
				tally(&results[before], res, err)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	waitCalls := func(n int64) {
		t.Helper()
		target := calls.Load() + n
		deadline := time.Now().Add(10 * time.Second)
		for calls.Load() < target {
			if time.Now().After(deadline) {
				t.Fatal("workers stalled")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCalls(50)
	phase.Store(4) // calls during a transition are tallied apart
	srv.Stop()
	phase.Store(1)
	waitCalls(100)
	errsDuringOutage := storeErrors.Load()
	phase.Store(4)
	srv.Restart()
	phase.Store(2)
	deadline := time.Now().Add(10 * time.Second)
	for !g.Available() {
		if time.Now().After(deadline) {
			t.Fatal("no recovery after restart")
		}
		clk.Advance(store.DefaultCooldown) // let one call probe the store
		time.Sleep(10 * time.Millisecond)
	}
	phase.Store(3)
	waitCalls(50)
	fallbacksRecovered := fallbacks.Load()
	waitCalls(50)
	close(done)
	wg.Wait()

	up, down := &results[0], &results[1]
	t.Logf("policy %s: up %d/%d, down allowed=%d refused=%d unavailable=%d, store errors %d",
		policy, up.allowed.Load(), up.refused.Load(), down.allowed.Load(), down.refused.Load(),
		down.unavailable.Load(), errsDuringOutage)
	for i := range results {
		if results[i].other.Load() != 0 {
			t.Fatalf("phase %d: unexpected errors", i)
		}
	}
	if up.allowed.Load() > 20 || up.unavailable.Load() != 0 || up.refused.Load() == 0 {
		t.Fatal("before the outage the store must admit at most its burst, then refuse")
	}
	// The breaker: at most one failing store call per worker in flight when it opened.
	if errsDuringOutage < 1 || errsDuringOutage > workers {
		t.Fatalf("%d store errors during the outage; the breaker should stop them", errsDuringOutage)
	}
	checkDown(t, policy, down, local, lim)
	// Recovered: the guard's calls reach the restarted store again, and no call falls back.
	if res, err := s.Take(ctx, "out:k", 0, lim); err != nil || res.Remaining >= 20 {
		t.Fatalf("the restarted store saw no calls: %+v %v", res, err)
	}
	if fallbacks.Load() != fallbacksRecovered {
		t.Fatalf("%d fallbacks after recovery", fallbacks.Load()-fallbacksRecovered)
	}
}

// checkDown asserts what each policy does while the store is down.
func checkDown(t *testing.T, policy store.Policy, down *outcome, local *store.Memory, lim store.Limit) {
	t.Helper()
	switch policy {
	case store.PolicyLocal: // the replica's share, burst 20/2 = 10, then refusals
		share, _ := local.Take(context.Background(), "out:k", 0, store.LocalShare(lim, 2))
		if down.allowed.Load() > 10 || down.refused.Load() == 0 || down.unavailable.Load() != 0 || share.Remaining != 0 {
			t.Fatalf("local fallback did not apply the replica's share (local remaining %d)", share.Remaining)
		}
	case store.PolicyAllow:
		if down.allowed.Load() == 0 || down.refused.Load() != 0 || down.unavailable.Load() != 0 {
			t.Fatal("allow policy refused during the outage")
		}
	case store.PolicyDeny:
		if down.allowed.Load() != 0 || down.refused.Load() != 0 || down.unavailable.Load() == 0 {
			t.Fatal("deny policy admitted during the outage")
		}
	}
}

func tally(o *outcome, res store.Result, err error) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		o.unavailable.Add(1)
	case err != nil:
		o.other.Add(1)
	case res.Allowed:
		o.allowed.Add(1)
	default:
		o.refused.Add(1)
	}
}
