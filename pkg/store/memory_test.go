package store

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestMemoryTake(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{Clock: clk.Now})
	ctx := context.Background()
	lim := Limit{Rate: 2, Period: time.Second}
	for i := range 2 {
		res, err := m.Take(ctx, "k", 1, lim)
		if err != nil || !res.Allowed {
			t.Fatalf("take %d: %+v %v", i, res, err)
		}
	}
	res, _ := m.Take(ctx, "k", 1, lim)
	if res.Allowed || res.RetryAfter != 500*time.Millisecond {
		t.Fatalf("third take: %+v", res)
	}
	if res, _ := m.Take(ctx, "other", 1, lim); !res.Allowed {
		t.Fatal("keys are not independent")
	}
	clk.Advance(500 * time.Millisecond)
	if res, _ := m.Take(ctx, "k", 1, lim); !res.Allowed {
		t.Fatalf("after refill: %+v", res)
	}
	if _, err := m.Take(ctx, "k", 1, Limit{}); err != ErrInvalidLimit {
		t.Fatalf("invalid limit: %v", err)
	}
	// A refused take on a new key stores nothing; an idle key is dropped on demand.
	m.Take(ctx, "huge", 3, lim)
	if n := m.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

func TestMemoryOnceCounterBan(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{Clock: clk.Now})
	ctx := context.Background()

	first, _ := m.Once(ctx, "nonce", time.Minute)
	again, _ := m.Once(ctx, "nonce", time.Minute)
	if !first || again {
		t.Fatalf("Once: %v %v", first, again)
	}
	clk.Advance(time.Minute)
	if first, _ := m.Once(ctx, "nonce", time.Minute); !first {
		t.Fatal("Once did not expire")
	}

	for want := int64(1); want <= 3; want++ {
		if n, _ := m.Incr(ctx, "fail", 10*time.Second); n != want {
			t.Fatalf("Incr = %d, want %d", n, want)
		}
	}
	clk.Advance(9 * time.Second)
	m.Incr(ctx, "fail", 10*time.Second) // does not extend the window
	if n, _ := m.Count(ctx, "fail"); n != 4 {
		t.Fatalf("Count = %d", n)
	}
	clk.Advance(time.Second)
	if n, _ := m.Count(ctx, "fail"); n != 0 {
		t.Fatalf("Count after window = %d", n)
	}

	m.Ban(ctx, "ip", 30*time.Second)
	if b, ttl, _ := m.Banned(ctx, "ip"); !b || ttl != 30*time.Second {
		t.Fatalf("Banned = %v %v", b, ttl)
	}
	if b, _, _ := m.Banned(ctx, "fail"); b {
		t.Fatal("key spaces are shared: a counter reads as a ban")
	}
	m.Ban(ctx, "ip", 0)
	if b, _, _ := m.Banned(ctx, "ip"); b {
		t.Fatal("ban not lifted")
	}
}

// TestMemoryEvictionBound floods a small store with distinct keys, as an attacker
// would, and checks the key count never exceeds MaxKeys while a live key that keeps
// being used survives more often than not.
func TestMemoryEvictionBound(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{MaxKeys: 1024, Shards: 4, Clock: clk.Now})
	ctx := context.Background()
	lim := Limit{Rate: 1, Period: time.Hour}
	for i := range 100_000 {
		m.Take(ctx, "flood"+strconv.Itoa(i), 1, lim)
		if i%1000 == 0 {
			if n := m.Len(); n > 1024 {
				t.Fatalf("after %d keys: Len = %d > MaxKeys", i, n)
			}
		}
	}
	if n := m.Len(); n > 1024 || n < 1000 {
		t.Fatalf("Len = %d", n)
	}
	// Victims are the sampled keys closest to idle: short-lived new keys never evict a
	// key that stays limited for an hour.
	clk.Advance(2 * time.Hour)
	m.Take(ctx, "live", 1, lim)
	for i := range 5000 {
		m.Take(ctx, "fresh"+strconv.Itoa(i), 1, Limit{Rate: 1, Period: time.Millisecond})
	}
	if res, _ := m.Take(ctx, "live", 1, lim); res.Allowed {
		t.Fatal("a live key was evicted while idle keys remained")
	}
}

// TestMemoryBound stores a million distinct keys and checks the heap growth stays
// under MaxKeys·BytesPerKey, the documented bound.
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~50 MB")
	}
	const keys = 1 << 20
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := NewMemory(MemoryOptions{MaxKeys: keys})
	ctx := context.Background()
	lim := Limit{Rate: 1, Period: time.Hour}
	buf := make([]byte, 0, 32)
	for i := range keys {
		buf = strconv.AppendInt(append(buf[:0], "client-"...), int64(i), 10)
		if _, err := m.Take(ctx, string(buf), 1, lim); err != nil {
			t.Fatal(err)
		}
	}
	used := heap() - before
	n := m.Len()
	runtime.KeepAlive(m)
	perKey := float64(used) / float64(n)
	t.Logf("%d keys: heap %.1f MiB, %.1f bytes/key", n, float64(used)/(1<<20), perKey)
	if n < keys*9/10 {
		t.Fatalf("only %d of %d keys kept", n, keys)
	}
	if used > keys*BytesPerKey {
		t.Fatalf("heap grew %d bytes > bound %d", used, keys*BytesPerKey)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxKeys: 4096})
	ctx := context.Background()
	lim := Limit{Rate: 100, Period: time.Hour}
	var admitted atomic.Int64
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 1000 {
				key := fmt.Sprint("k", (g*1000+i)%4)
				if res, _ := m.Take(ctx, key, 1, lim); res.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if got := admitted.Load(); got != 400 { // 4 keys × burst 100, no refill in an hour
		t.Fatalf("admitted %d, want 400", got)
	}
}

// BenchmarkMemoryTake measures a decision on an existing, live key: each key is first
// charged an hour's worth of units so it stays in the store for the whole run.
func BenchmarkMemoryTake(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	ctx := context.Background()
	lim := Limit{Rate: 1_000_000_000, Period: time.Hour} // T = 3.6µs
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "bench-key-" + strconv.Itoa(i)
		m.Take(ctx, keys[i], 1_000_000, lim)
	}
	var seq atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1)) * 97
		for pb.Next() {
			if res, err := m.Take(ctx, keys[i&1023], 1, lim); err != nil || !res.Allowed {
				b.Errorf("Take: %+v %v", res, err)
				return
			}
			i++
		}
	})
	b.StopTimer()
	if n := m.Len(); n != len(keys) {
		b.Fatalf("keys were dropped or added: %d", n)
	}
}

// A ttl near the largest Duration (a signature valid for centuries) saturates instead
// of wrapping into an entry that has already expired (found by a second reader's
// review: a replay-protection entry that wrapped let the same signature in twice).
func TestMemoryHugeTTL(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	const ttl = time.Duration(math.MaxInt64)
	if first, _ := m.Once(ctx, "once", ttl); !first {
		t.Fatal("first Once not first")
	}
	if first, _ := m.Once(ctx, "once", ttl); first {
		t.Fatal("the same key was accepted twice")
	}
	if err := m.Ban(ctx, "ban", ttl); err != nil {
		t.Fatal(err)
	}
	if banned, left, _ := m.Banned(ctx, "ban"); !banned || left <= 0 {
		t.Fatalf("banned %v, %v left", banned, left)
	}
	for want := int64(1); want <= 2; want++ {
		if n, _ := m.Incr(ctx, "incr", ttl); n != want {
			t.Fatalf("count %d, want %d", n, want)
		}
	}
}

// A ban is never shortened: a shorter ban arriving after a longer one (concurrent
// escalations out of order) leaves the longer one; ttl <= 0 still lifts it.
func TestMemoryBanNeverShortens(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(MemoryOptions{Clock: clk.Now})
	defer m.Close()
	ctx := context.Background()
	_ = m.Ban(ctx, "k", 10*time.Minute)
	_ = m.Ban(ctx, "k", time.Minute)
	if _, left, _ := m.Banned(ctx, "k"); left != 10*time.Minute {
		t.Fatalf("%v left, want the longer ban's 10m", left)
	}
	_ = m.Ban(ctx, "k", time.Hour)
	if _, left, _ := m.Banned(ctx, "k"); left != time.Hour {
		t.Fatalf("%v left, want the longer ban's 1h", left)
	}
	_ = m.Ban(ctx, "k", 0)
	if banned, _, _ := m.Banned(ctx, "k"); banned {
		t.Fatal("a ttl of 0 did not lift the ban")
	}
}
