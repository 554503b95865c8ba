package valkeystore

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// newStore connects a Store to srv with a timeout generous enough for a loaded CI box.
func newStore(t testing.TB, srv *redisharness.Server, mod func(*Options)) *Store {
	t.Helper()
	o := Options{Addrs: []string{srv.Addr()}, KeyPrefix: "test:", Timeout: 2 * time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestTake(t *testing.T) {
	s := newStore(t, redisharness.Start(t), nil)
	ctx := context.Background()
	lim := store.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	for i := range 3 {
		res, err := s.Take(ctx, "login:1.2.3.4", 1, lim)
		if err != nil || !res.Allowed || res.Remaining != uint64(2-i) {
			t.Fatalf("take %d: %+v %v", i, res, err)
		}
	}
	res, err := s.Take(ctx, "login:1.2.3.4", 1, lim)
	if err != nil || res.Allowed {
		t.Fatalf("4th take admitted: %+v %v", res, err)
	}
	// Retry-after is about T = 20min; reset about 3T = 1h (server time moved a little).
	if res.RetryAfter < 19*time.Minute || res.RetryAfter > 20*time.Minute ||
		res.ResetAfter < 59*time.Minute || res.ResetAfter > time.Hour {
		t.Fatalf("refusal timing: %+v", res)
	}
	if res, _ := s.Take(ctx, "login:5.6.7.8", 1, lim); !res.Allowed {
		t.Fatal("keys are not independent")
	}
	if res, _ := s.Take(ctx, "login:9.9.9.9", 4, lim); res.Allowed {
		t.Fatal("cost above burst admitted")
	}
	if _, err := s.Take(ctx, "x", 1, store.Limit{}); !errors.Is(err, store.ErrInvalidLimit) {
		t.Fatalf("invalid limit: %v", err)
	}
}

// TestTakeMatchesReference checks the script against store.GCRA on a fast limit: a
// short burst then refusals, then refill after the interval.
func TestTakeMatchesReference(t *testing.T) {
	s := newStore(t, redisharness.Start(t), nil)
	ctx := context.Background()
	// T = 1s: the first three takes must reach the server within it, even on a
	// loaded machine.
	lim := store.Limit{Rate: 2, Period: 2 * time.Second, Burst: 2}
	for i, want := range []bool{true, true, false} {
		res, err := s.Take(ctx, "ref:k", 1, lim)
		if err != nil || res.Allowed != want {
			t.Fatalf("take %d: %+v %v", i, res, err)
		}
	}
	// Wait until the server says one unit is back (bounded), then it must be admitted.
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := s.Take(ctx, "ref:k", 0, lim)
		if err != nil {
			t.Fatal(err)
		}
		if res.Remaining >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no refill")
		}
		time.Sleep(res.RetryAfter/4 + time.Millisecond)
	}
	if res, err := s.Take(ctx, "ref:k", 1, lim); err != nil || !res.Allowed {
		t.Fatalf("after refill: %+v %v", res, err)
	}
}

func TestOnceCounterBan(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	if first, err := s.Once(ctx, "jti:abc", time.Minute); err != nil || !first {
		t.Fatalf("Once first: %v %v", first, err)
	}
	if first, err := s.Once(ctx, "jti:abc", time.Minute); err != nil || first {
		t.Fatalf("Once replay: %v %v", first, err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := s.Incr(ctx, "bf:ip", time.Minute); err != nil || n != want {
			t.Fatalf("Incr: %d %v", n, err)
		}
	}
	if n, err := s.Count(ctx, "bf:ip"); err != nil || n != 3 {
		t.Fatalf("Count: %d %v", n, err)
	}
	if n, err := s.Count(ctx, "bf:none"); err != nil || n != 0 {
		t.Fatalf("Count absent: %d %v", n, err)
	}
	if b, _, err := s.Banned(ctx, "bf:ip"); err != nil || b {
		t.Fatalf("Banned before ban: %v %v", b, err)
	}
	if err := s.Ban(ctx, "bf:ip", time.Minute); err != nil {
		t.Fatal(err)
	}
	if b, left, err := s.Banned(ctx, "bf:ip"); err != nil || !b || left <= 50*time.Second || left > time.Minute {
		t.Fatalf("Banned: %v %v %v", b, left, err)
	}
	if err := s.Ban(ctx, "bf:ip", 0); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := s.Banned(ctx, "bf:ip"); b {
		t.Fatal("ban not lifted")
	}
}

// A ban is never shortened on the server either: the script keeps a ban that ends
// later (found by a second reader's review: a high-level ban arriving after a
// critical one replaced it with a shorter one).
func TestBanNeverShortens(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	if err := s.Ban(ctx, "bf:k", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Ban(ctx, "bf:k", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, left, err := s.Banned(ctx, "bf:k"); err != nil || left < 9*time.Minute {
		t.Fatalf("%v left (%v), want the longer ban", left, err)
	}
	if err := s.Ban(ctx, "bf:k", 0); err != nil {
		t.Fatal(err)
	}
	if banned, _, _ := s.Banned(ctx, "bf:k"); banned {
		t.Fatal("a ttl of 0 did not lift the ban")
	}
}

// TestBanCacheInvalidation: a replica caching ban lookups sees a ban another replica
// sets, because the server invalidates its cached miss.
func TestBanCacheInvalidation(t *testing.T) {
	srv := redisharness.Start(t)
	a := newStore(t, srv, func(o *Options) { o.BanCacheTTL = time.Minute })
	b := newStore(t, srv, nil)
	ctx := context.Background()
	if banned, _, err := a.Banned(ctx, "bf:10.0.0.1"); err != nil || banned {
		t.Fatalf("before: %v %v", banned, err)
	}
	if err := b.Ban(ctx, "bf:10.0.0.1", time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		banned, _, err := a.Banned(ctx, "bf:10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if banned {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cached miss never invalidated")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The client-side cache is on only with a ban cache TTL, and then bounded to what ban
// lookups need rather than valkey-go's 128 MiB per connection.
func TestClientCacheOptions(t *testing.T) {
	off, err := clientOption(Options{Addrs: []string{"127.0.0.1:1"}})
	if err != nil || !off.DisableCache {
		t.Fatalf("no ban cache: DisableCache %v, %v", off.DisableCache, err)
	}
	on, err := clientOption(Options{Addrs: []string{"127.0.0.1:1"}, BanCacheTTL: time.Minute})
	if err != nil || on.DisableCache || on.CacheSizeEachConn != banCacheBytes {
		t.Fatalf("ban cache: DisableCache %v, CacheSizeEachConn %d, %v", on.DisableCache, on.CacheSizeEachConn, err)
	}
}

func TestKeyNaming(t *testing.T) {
	s := &Store{prefix: "p:"}
	tests := []struct{ kind, in, want string }{
		{"rl", "api:1.2.3.4", "p:rl:{api}:1.2.3.4"},
		{"rl", "noscope", "p:rl:{noscope}"},
		{"ban", "bf:ip:10.0.0.1", "p:ban:{bf}:ip:10.0.0.1"},
		{"rl", ":x", "p:rl:{}:x"},
	}
	for _, tc := range tests {
		if got := s.key(tc.kind, tc.in); got != tc.want {
			t.Errorf("key(%q, %q) = %q, want %q", tc.kind, tc.in, got, tc.want)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []Options{
		{},
		{Addrs: []string{"a:1", "b:1"}},
		{Addrs: []string{"a:1"}, Mode: ModeSentinel},
		{Addrs: []string{"a:1"}, Mode: ModeCluster, DB: 2},
		{Addrs: []string{"a:1"}, Mode: "ring"},
		{Addrs: []string{"a:1"}, KeyPrefix: "x{y}"},
	}
	for i, o := range tests {
		if _, err := New(o); err == nil {
			t.Errorf("case %d: accepted %+v", i, o)
		}
	}
}

// TestNewWhileDown: a standalone store can be created while the server is down and
// works once it is up.
func TestNewWhileDown(t *testing.T) {
	srv := redisharness.Start(t)
	srv.Stop()
	s := newStore(t, srv, func(o *Options) { o.Timeout = 200 * time.Millisecond })
	ctx := context.Background()
	lim := store.Limit{Rate: 1, Period: time.Second}
	if _, err := s.Take(ctx, "k:1", 1, lim); err == nil {
		t.Fatal("Take succeeded with the server down")
	}
	srv.Restart()
	var err error
	for range 50 {
		if _, err = s.Take(ctx, "k:1", 1, lim); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no recovery: %v", err)
}

// BenchmarkTake64: 64 goroutines in all, a key each (the version of the server is logged).
func BenchmarkTake64(b *testing.B) {
	benchTake(b, max(1, 64/runtime.GOMAXPROCS(0)), false)
}

// BenchmarkTakeHotKey: 32 goroutines per GOMAXPROCS take from one key, the case that
// coalescing serves (a per-route limit every request hits).
func BenchmarkTakeHotKey(b *testing.B) { benchTake(b, 32, true) }

// BenchmarkTakeDistinctKeys: the same load on a key per goroutine, where nothing
// coalesces (the cost of the coalescer's bookkeeping).
func BenchmarkTakeDistinctKeys(b *testing.B) { benchTake(b, 32, false) }

// benchTake runs parallelism goroutines per GOMAXPROCS taking from one shared key
// (hot) or a key each.
func benchTake(b *testing.B, parallelism int, hot bool) {
	srv := redisharness.Start(b)
	s := newStore(b, srv, nil)
	ctx := context.Background()
	lim := store.Limit{Rate: 100_000_000, Period: time.Second}
	b.Logf("%s", srv.Version())
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		key := "bench:hot"
		if !hot {
			key = "bench:" + strconv.FormatInt(seq.Add(1), 10)
		}
		for pb.Next() {
			if _, err := s.Take(ctx, key, 1, lim); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A limit whose emission interval is far below a microsecond still advances the stored
// TAT: Lua's doubles cannot add 1ns to an absolute time in microseconds, and the
// script once lost such costs, so a limit above 4M/s was never charged.
func TestTakeSubMicrosecondInterval(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	lim := store.Limit{Rate: 1_000_000_000, Period: time.Second}
	res, err := s.Take(ctx, "fast:k", 1, lim)
	if err != nil || !res.Allowed {
		t.Fatalf("take: %+v %v", res, err)
	}
	if res.Remaining >= lim.Rate {
		t.Fatalf("remaining %d after one admission, want below %d: the TAT did not advance", res.Remaining, lim.Rate)
	}
	// (The key itself expires a millisecond later, when the key is idle again.)
}
