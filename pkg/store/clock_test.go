package store

import (
	"sync"
	"testing"
	"time"
)

// waitFor polls cond for up to 5 s (a loaded CI machine may delay the ticker).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCoarseClockAdvancesAndNeverRunsAhead(t *testing.T) {
	c := newCoarseClock()
	defer c.Close()
	first := c.Now()
	if first <= 0 {
		t.Fatalf("first reading %d, want > 0 (0 means idle to the store)", first)
	}
	if !c.running.Load() {
		t.Fatal("a read did not start the ticker")
	}
	waitFor(t, "the clock to advance", func() bool { return c.Now() > first })
	for range 1000 {
		// The published time is never ahead of the real clock read after it.
		if got, real := c.Now(), c.fresh(); got > real {
			t.Fatalf("coarse clock %d ahead of the real clock %d", got, real)
		}
	}
}

func TestCoarseClockTickerStopsWhenIdleAndRestarts(t *testing.T) {
	c := newCoarseClock()
	defer c.Close()
	c.Now()
	waitFor(t, "the idle ticker to stop", func() bool { return !c.running.Load() })
	before := c.fresh()
	if got := c.Now(); got < before {
		t.Fatalf("a read after the ticker stopped returned %d, older than %d: it must read the clock", got, before)
	}
	if !c.running.Load() {
		t.Fatal("a read did not restart the ticker")
	}
}

func TestCoarseClockOneTickerForConcurrentReaders(t *testing.T) {
	c := newCoarseClock()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 1000 {
				c.Now()
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	c.closed = true // no new tickers; count the live one by waiting for it
	close(c.stop)
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the ticker did not stop")
	}
	if c.running.Load() {
		t.Fatal("running after every ticker stopped")
	}
}

func TestCoarseClockClose(t *testing.T) {
	c := newCoarseClock()
	c.Now()
	c.Close()
	c.Close() // idempotent
	if c.running.Load() {
		t.Fatal("ticker still running after Close")
	}
	a := c.Now()
	time.Sleep(2 * time.Millisecond)
	if b := c.Now(); b <= a {
		t.Fatalf("a closed clock stopped advancing: %d then %d", a, b)
	}
	if c.running.Load() {
		t.Fatal("a read after Close started a ticker")
	}
}

func TestMemoryCloseKeepsWorking(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	lim := Limit{Rate: 10, Period: time.Second, Burst: 1}
	if res, _ := m.Take(t.Context(), "k", 1, lim); !res.Allowed {
		t.Fatal("first take refused")
	}
	m.Close()
	if res, _ := m.Take(t.Context(), "k", 1, lim); res.Allowed {
		t.Fatal("second take within the emission interval admitted after Close")
	}
}
