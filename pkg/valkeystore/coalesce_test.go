package valkeystore

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// TestBatchScriptMatchesReference sends one batch of costs to the script and checks
// every decision against sequential store.GCRA calls at one instant, then that the
// stored TAT makes a following single Take agree with the reference too. T is a whole
// number of seconds, so the script's microseconds are exact.
func TestBatchScriptMatchesReference(t *testing.T) {
	s := newStore(t, redisharness.Start(t), nil)
	ctx := context.Background()
	lim := store.Limit{Rate: 4, Period: time.Hour, Burst: 4} // T = 15min
	tests := []struct {
		name  string
		costs []uint64
	}{
		{"refusal in the middle", []uint64{1, 1, 3, 1}},
		{"above burst first", []uint64{5, 1}},
		{"zero costs report", []uint64{0, 4, 0, 1}},
		{"exhausted", []uint64{2, 2, 2}},
		{"single", []uint64{3}},
		{"runs", []uint64{1, 1, 1, 2, 2, 0, 0, 1}},
		{"refusal inside a run", []uint64{1, 1, 1, 1, 1, 1}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "batch:" + strconv.Itoa(i)
			lk := limitKey{key: s.key("rl", key), interval: int64(lim.Interval()), burst: lim.EffectiveBurst()}
			vals := make([][4]int64, len(tc.costs))
			if err := s.rl.send(ctx, lk, tc.costs, vals); err != nil {
				t.Fatalf("script: %v", err)
			}
			const now = int64(1_000_000 * time.Hour)
			tat := int64(0)
			for j, c := range tc.costs {
				var want store.Result
				tat, want = store.GCRA(tat, now, c, lim)
				got := vals[j]
				if got != resultInts(want) {
					t.Errorf("cost %d (#%d): script %v, reference %v", c, j, got, resultInts(want))
				}
			}
			// The next single decision (the server's clock moved by far less than T).
			_, want := store.GCRA(tat, now, 1, lim)
			got, err := s.Take(ctx, key, 1, lim)
			if err != nil || got.Allowed != want.Allowed || got.Remaining != want.Remaining {
				t.Fatalf("following Take: %+v %v, reference %+v", got, err, want)
			}
		})
	}
}

// TestScriptAndReplayAgree sends random batches under random limits, sub-microsecond
// and fractional intervals included, against a key that is already partly used: send
// fails when the client's replay of the script's arithmetic does not end where the
// script did, so every batch here checks that both sides compute the same TAT.
func TestScriptAndReplayAgree(t *testing.T) {
	s := newStore(t, redisharness.Start(t), nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	limits := []store.Limit{
		{Rate: 3, Period: time.Second, Burst: 5},           // 333333.33µs
		{Rate: 7, Period: time.Millisecond, Burst: 20},     // 142.857µs
		{Rate: 3_000_000, Period: time.Second, Burst: 100}, // 0.333µs
		{Rate: 1_000_000_000, Period: time.Second},         // 0.001µs
		{Rate: 1, Period: 24 * time.Hour, Burst: 1},
	}
	for i := range 300 {
		lim := limits[i%len(limits)]
		lk := limitKey{key: s.key("rl", "agree:"+strconv.Itoa(i%len(limits))), interval: int64(lim.Interval()), burst: lim.EffectiveBurst()}
		costs := make([]uint64, 1+rng.IntN(40))
		for j := range costs {
			costs[j] = uint64(rng.IntN(3)) // runs of 0, 1 and 2
			if rng.IntN(20) == 0 {
				costs[j] = lim.EffectiveBurst() + 1
			}
		}
		if err := s.rl.send(ctx, lk, costs, make([][4]int64, len(costs))); err != nil {
			t.Fatalf("batch %d (%v, costs %v): %v", i, lim, costs, err)
		}
	}
}

// resultInts is r as the script reports it.
func resultInts(r store.Result) [4]int64 {
	allowed := int64(0)
	if r.Allowed {
		allowed = 1
	}
	return [4]int64{allowed, int64(r.Remaining), r.RetryAfter.Microseconds(), r.ResetAfter.Microseconds()}
}

// TestCoalescingHotKey: 64 goroutines take from one key; far fewer script calls than
// Takes are made, and exactly the burst is admitted (no refill: N per hour).
func TestCoalescingHotKey(t *testing.T) {
	s := newStore(t, redisharness.Start(t), nil)
	const n = 500
	lim := store.Limit{Rate: n, Period: time.Hour, Burst: n}
	admitted, failures := hammer(s, []string{"hot:k"}, 64, 4*n, lim)
	calls := s.rl.made.Load()
	t.Logf("%d Takes, %d script calls, %d admitted", 4*n, calls, admitted["hot:k"])
	if failures != 0 {
		t.Fatalf("%d failures", failures)
	}
	if admitted["hot:k"] != n {
		t.Fatalf("admitted %d, want exactly %d", admitted["hot:k"], n)
	}
	if calls*2 > 4*n {
		t.Fatalf("%d script calls for %d Takes: no coalescing", calls, 4*n)
	}
	assertIdle(t, s)
}

// TestDistinctKeysNotBatched: concurrent Takes on several keys; each key admits
// exactly its own burst (a call carrying another key's decisions would apply them to
// one key and break the count).
func TestDistinctKeysNotBatched(t *testing.T) {
	s := newStore(t, redisharness.Start(t), nil)
	const n = 50
	lim := store.Limit{Rate: n, Period: time.Hour, Burst: n}
	keys := []string{"dk:a", "dk:b", "dk:c", "dk:d", "other:a", "other:b"}
	admitted, failures := hammer(s, keys, 64, 4*n*len(keys), lim)
	if failures != 0 {
		t.Fatalf("%d failures", failures)
	}
	for _, k := range keys {
		if admitted[k] != n {
			t.Errorf("%s admitted %d, want %d", k, admitted[k], n)
		}
	}
	if calls := s.rl.made.Load(); calls < int64(len(keys)) {
		t.Fatalf("%d script calls for %d keys", calls, len(keys))
	}
	assertIdle(t, s)
}

// hammer runs total Takes of cost 1 from goroutines, spread round-robin over keys,
// and returns the admitted count per key and the number of failed Takes.
func hammer(s *Store, keys []string, goroutines, total int, lim store.Limit) (map[string]int, int) {
	counts := make([]atomic.Int64, len(keys))
	var next, failures atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(total); i = next.Add(1) - 1 {
				k := int(i) % len(keys)
				res, err := s.Take(context.Background(), keys[k], 1, lim)
				switch {
				case err != nil:
					failures.Add(1)
				case res.Allowed:
					counts[k].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	admitted := make(map[string]int, len(keys))
	for i, k := range keys {
		admitted[k] = int(counts[i].Load())
	}
	return admitted, int(failures.Load())
}

// assertIdle fails unless the coalescer holds no key (nothing in flight).
// assertIdle waits until the coalescer holds no key and no command is outstanding: a
// runner whose members left at their deadline goes on waiting for its call, and ends
// once valkey-go is done with it.
func assertIdle(t *testing.T, s *Store) {
	t.Helper()
	held := func() (keys int) {
		for i := range s.rl.shards {
			sh := &s.rl.shards[i]
			sh.mu.Lock()
			keys += len(sh.inflight)
			sh.mu.Unlock()
		}
		return keys
	}
	waitFor(t, "the coalescer to be idle", func() bool { return held() == 0 && s.calls.n.Load() == 0 })
}

// coalescerState reports how many calls key has in flight under lim and how many
// Takes its pending batch holds.
func coalescerState(s *Store, key string, lim store.Limit) (inflight, pending int) {
	lk := limitKey{key: s.key("rl", key), interval: int64(lim.Interval()), burst: lim.EffectiveBurst()}
	sh := s.rl.shard(lk.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	kc := sh.inflight[lk]
	if kc.pending != nil {
		pending = kc.pending.n
	}
	return kc.calls, pending
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin polls cond until it holds, failing the test after d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// pause makes the server hold every write command (scripts included) until unpause,
// or 5s, through its own connection.
func pause(t *testing.T, srv *redisharness.Server) (unpause func()) {
	t.Helper()
	ctl := newStore(t, srv, nil)
	ctx := context.Background()
	if err := ctl.c.Do(ctx, ctl.c.B().ClientPause().Timeout(5000).Write().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := ctl.c.Do(ctx, ctl.c.B().ClientUnpause().Build()).Error(); err != nil {
			t.Error(err)
		}
	}
}

// takeAsync runs one Take and delivers its outcome.
type outcomeErr struct {
	res store.Result
	err error
}

func takeAsync(ctx context.Context, s *Store, key string, cost uint64, lim store.Limit) <-chan outcomeErr {
	ch := make(chan outcomeErr, 1)
	go func() {
		res, err := s.Take(ctx, key, cost, lim)
		ch <- outcomeErr{res, err}
	}()
	return ch
}
