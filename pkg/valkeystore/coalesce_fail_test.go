package valkeystore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// fillInflight starts maxInflight Takes of key and waits until all are calls in flight
// (the server being paused, they stay there): later Takes join the pending batch.
func fillInflight(t *testing.T, s *Store, key string, lim store.Limit) []<-chan outcomeErr {
	t.Helper()
	var outs []<-chan outcomeErr
	for range maxInflight {
		outs = append(outs, takeAsync(context.Background(), s, key, 1, lim))
	}
	waitFor(t, "the calls in flight", func() bool { n, _ := coalescerState(s, key, lim); return n == maxInflight })
	return outs
}

// TestWaiterGivesUp: while the server holds a key's calls, Takes join its pending
// batch; those whose context expires get the context's error at once, the others are
// decided when the server resumes, and the abandoned costs are not counted (they
// gave up before their batch was sent).
func TestWaiterGivesUp(t *testing.T) {
	tests := []struct {
		name   string
		giveUp []bool
	}{
		{"one of three", []bool{false, true, false}},
		{"all", []bool{true, true, true}},
		{"first to join", []bool{true, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := redisharness.Start(t)
			s := newStore(t, srv, nil)
			lim := store.Limit{Rate: 10, Period: time.Hour, Burst: 10}
			const key = "give:up"
			unpause := pause(t, srv)
			firsts := fillInflight(t, s, key, lim)
			waiters := make([]<-chan outcomeErr, len(tc.giveUp))
			kept := 0
			for i, g := range tc.giveUp {
				ctx := context.Background()
				if g {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
					defer cancel()
				} else {
					kept++
				}
				waiters[i] = takeAsync(ctx, s, key, 1, lim)
				waitFor(t, "a join", func() bool { _, n := coalescerState(s, key, lim); return n == i+1 })
			}
			for i, g := range tc.giveUp {
				if g {
					if o := <-waiters[i]; !errors.Is(o.err, context.DeadlineExceeded) {
						t.Fatalf("waiter %d: %+v, want a deadline error", i, o)
					}
				}
			}
			unpause()
			for _, first := range firsts {
				if o := <-first; o.err != nil || !o.res.Allowed {
					t.Fatalf("first: %+v", o)
				}
			}
			for i, g := range tc.giveUp {
				if !g {
					if o := <-waiters[i]; o.err != nil || !o.res.Allowed {
						t.Fatalf("waiter %d: %+v", i, o)
					}
				}
			}
			res, err := s.Take(context.Background(), key, 0, lim)
			if want := uint64(10 - maxInflight - kept); err != nil || res.Remaining != want {
				t.Fatalf("remaining %d (%v), want %d: abandoned costs were counted", res.Remaining, err, want)
			}
			assertIdle(t, s)
		})
	}
}

// TestBatchCap: with the key's calls held, 300 more Takes arrive; 256 join the pending
// batch and the rest send their own calls. All are decided once the server resumes.
func TestBatchCap(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, nil)
	lim := store.Limit{Rate: 1000, Period: time.Hour, Burst: 1000}
	const key, extra = "cap:k", 300
	unpause := pause(t, srv)
	outs := fillInflight(t, s, key, lim)
	for range extra {
		outs = append(outs, takeAsync(context.Background(), s, key, 1, lim))
	}
	wantCalls := int64(maxInflight + extra - maxBatch) // the first ones, and one per Take over the cap
	waitFor(t, "a full batch", func() bool {
		_, n := coalescerState(s, key, lim)
		return n == maxBatch && s.rl.made.Load() == wantCalls
	})
	unpause()
	for i, ch := range outs {
		if o := <-ch; o.err != nil || !o.res.Allowed {
			t.Fatalf("take %d: %+v", i, o)
		}
	}
	if calls := s.rl.made.Load(); calls != wantCalls+1 {
		t.Fatalf("%d script calls, want %d", calls, wantCalls+1)
	}
	res, err := s.Take(context.Background(), key, 0, lim)
	if err != nil || res.Remaining != 1000-maxInflight-extra {
		t.Fatalf("remaining %d (%v), want %d", res.Remaining, err, 1000-maxInflight-extra)
	}
	assertIdle(t, s)
}

// TestHungServer: the server holds every call; each Take fails within its timeout
// (batch members wait under their batch's deadline), nothing hangs, and the store
// works afterwards. Calls sent before their callers gave up are executed when the
// server resumes and count (up to the 128 decisions made here), so the limit is set
// above that: the test is about recovery, not about what the held calls admitted.
func TestHungServer(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, func(o *Options) { o.Timeout = 200 * time.Millisecond })
	lim := store.Limit{Rate: 1000, Period: time.Hour}
	unpause := pause(t, srv)
	failAll(t, s, "hung:k", lim)
	unpause()
	if res, err := s.Take(context.Background(), "hung:k", 1, lim); err != nil || !res.Allowed {
		t.Fatalf("after the pause: %+v %v", res, err)
	}
	assertIdle(t, s)
}

// TestServerDiesUnderWaiters: calls are held and 63 Takes wait in the pending batch
// when the server dies; every one fails, none hangs.
func TestServerDiesUnderWaiters(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, func(o *Options) { o.Timeout = time.Second })
	lim := store.Limit{Rate: 100, Period: time.Hour}
	const key = "dies:k"
	pause(t, srv)
	outs := fillInflight(t, s, key, lim)
	for range 63 {
		outs = append(outs, takeAsync(context.Background(), s, key, 1, lim))
	}
	waitFor(t, "the batch", func() bool { _, n := coalescerState(s, key, lim); return n == 63 })
	start := time.Now()
	srv.Stop()
	collectFailures(t, outs)
	t.Logf("%d waiters failed within %v of the server's death", len(outs), time.Since(start))
	failAll(t, s, key, lim) // and with the server gone for good
	assertIdle(t, s)
}

// failAll runs 64 concurrent Takes of key, two each, and requires every one to fail.
func failAll(t *testing.T, s *Store, key string, lim store.Limit) {
	t.Helper()
	var outs []<-chan outcomeErr
	for range 64 {
		ch := make(chan outcomeErr, 2)
		outs = append(outs, ch, ch)
		go func() {
			for range 2 {
				res, err := s.Take(context.Background(), key, 1, lim)
				ch <- outcomeErr{res, err}
			}
		}()
	}
	collectFailures(t, outs)
}

// collectFailures receives every outcome (bounded by 20s in all) and requires errors.
func collectFailures(t *testing.T, outs []<-chan outcomeErr) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for i, ch := range outs {
		select {
		case o := <-ch:
			if o.err == nil {
				t.Fatalf("take %d succeeded: %+v", i, o.res)
			}
		case <-timeout:
			t.Fatalf("take %d hung", i)
		}
	}
}
