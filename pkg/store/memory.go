package store

import (
	"context"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"time"
)

// DefaultMaxKeys is the key bound of a Memory store when MemoryOptions.MaxKeys is 0.
const DefaultMaxKeys = 1 << 20

// BytesPerKey is the documented upper bound of heap memory per stored key, measured by
// TestMemoryBound with a million keys (48 bytes on average: 24-byte slots in tables
// kept between 3/8 and 3/4 full). A Memory store
// uses at most MaxKeys·BytesPerKey plus a few KiB.
const BytesPerKey = 64

// evictSample is how many entries a full shard inspects to pick a victim.
const evictSample = 8

// MemoryOptions configures a Memory store. The zero value is usable.
type MemoryOptions struct {
	// MaxKeys bounds the keys held across all uses (limits, once-sets, counters, bans);
	// 0 means DefaultMaxKeys. Memory stays under MaxKeys·BytesPerKey.
	MaxKeys int
	// Shards is the number of independently locked shards, rounded up to a power of
	// two; 0 means 4·GOMAXPROCS, at least 16.
	Shards int
	// Clock returns the current time; nil means the store's own coarse monotonic clock
	// (ClockTick), whose ticker Close stops.
	Clock func() time.Time
}

// kind separates the key spaces of the four interfaces: each hashes with its own seed.
type kind uint8

const (
	kindLimit kind = iota
	kindOnce
	kindCount
	kindBan
	kinds
)

// entry is one key's state. exp is when the entry stops mattering (the TAT for limits),
// in nanoseconds on the store's clock; n is the count for counters.
type entry struct {
	n   int64
	exp int64
}

// shard is one lock and its table, padded to its own cache lines (no false sharing
// between shards that two cores use at once).
type shard struct {
	mu sync.Mutex
	t  table
	// The last limit Taken here and its emission interval (t 0: none yet): most shards
	// see one or a few limits, and the interval is a 64-bit division.
	lastLim Limit
	last    emission
	_       [48]byte // 80 bytes above: pads the shard to two cache lines of its own
}

// emission returns lim's emission interval, t 0 when lim is not Valid (s locked).
func (s *shard) emission(lim Limit) emission {
	if s.last.t != 0 && lim == s.lastLim {
		return s.last
	}
	t, ok := lim.interval()
	if !ok {
		return emission{}
	}
	s.lastLim, s.last = lim, newEmission(t)
	return s.last
}

// Memory is the in-memory Store for one replica. Keys are kept as 64-bit maphash
// values under a per-process random seed, so a key costs a fixed size whatever its
// length, and a client cannot choose keys that collide (two keys sharing a hash would
// share state; with a million keys the chance of any collision is about 3·10^-8).
// Locks are held only for a table lookup and a few integer operations.
type Memory struct {
	seeds    [kinds]maphash.Seed
	shards   []shard
	mask     uint64
	perShard int
	clock    func() time.Time // nil: coarse
	base     time.Time
	coarse   *coarseClock
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Shards <= 0 {
		o.Shards = max(16, 4*runtime.GOMAXPROCS(0))
	}
	n := 1 << bits.Len(uint(o.Shards-1))
	if n > o.MaxKeys {
		n = 1 << (bits.Len(uint(o.MaxKeys)) - 1)
	}
	m := &Memory{
		shards:   make([]shard, n),
		mask:     uint64(n - 1),
		perShard: o.MaxKeys / n,
		clock:    o.Clock,
	}
	if o.Clock != nil {
		m.base = o.Clock()
	} else {
		m.coarse = newCoarseClock()
	}
	for i := range m.seeds {
		m.seeds[i] = maphash.MakeSeed()
	}
	return m
}

// now returns nanoseconds since the store was created (monotonic, ClockTick coarse
// unless MemoryOptions.Clock is set). It starts at 1 so that 0 always means "idle".
func (m *Memory) now() int64 {
	if m.clock == nil {
		return m.coarse.Now()
	}
	return int64(m.clock().Sub(m.base)) + 1
}

// Close stops the goroutine that keeps the store's clock (it also stops by itself
// when the store goes unused for 100 ticks). The store still works after Close,
// reading the system clock on every call.
func (m *Memory) Close() {
	if m.coarse != nil {
		m.coarse.Close()
	}
}

// lookup hashes key in the key space k and returns its hash and shard.
func (m *Memory) lookup(k kind, key string) (uint64, *shard) {
	h := slotKey(maphash.String(m.seeds[k], key))
	return h, &m.shards[(h>>32)&m.mask]
}

// Take implements Limiter with GCRA. It does not allocate for an existing key.
func (m *Memory) Take(_ context.Context, key string, cost uint64, lim Limit) (res Result, err error) {
	h, s := m.lookup(kindLimit, key)
	now := m.now()
	s.mu.Lock()
	em := s.emission(lim)
	if em.t == 0 {
		s.mu.Unlock()
		return Result{}, ErrInvalidLimit
	}
	e := s.t.find(h)
	var old int64
	if e != nil {
		old = e.exp
	}
	tat := gcra(old, now, cost, lim, em, &res)
	if res.Allowed && tat > now {
		if e != nil {
			e.exp = tat
		} else {
			m.insert(s, h, entry{exp: tat}, now)
		}
	}
	s.mu.Unlock()
	return res, nil
}

// Once implements OnceSet.
func (m *Memory) Once(_ context.Context, key string, ttl time.Duration) (bool, error) {
	h, s := m.lookup(kindOnce, key)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.t.find(h)
	if e != nil && e.exp > now {
		return false, nil
	}
	if ttl > 0 {
		m.put(s, h, e, entry{exp: expiry(now, ttl)}, now)
	}
	return true, nil
}

// Incr implements Counter.
func (m *Memory) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	h, s := m.lookup(kindCount, key)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.t.find(h)
	var e entry
	if cur != nil && cur.exp > now {
		e = *cur
	} else {
		e = entry{n: 0, exp: expiry(now, max(ttl, 1))}
	}
	e.n++
	m.put(s, h, cur, e, now)
	return e.n, nil
}

// Count implements Counter.
func (m *Memory) Count(_ context.Context, key string) (int64, error) {
	h, s := m.lookup(kindCount, key)
	now := m.now()
	s.mu.Lock()
	var e entry
	if p := s.t.find(h); p != nil {
		e = *p
	}
	s.mu.Unlock()
	if e.exp <= now {
		return 0, nil
	}
	return e.n, nil
}

// Ban implements BanList. A ttl <= 0 lifts the ban.
func (m *Memory) Ban(_ context.Context, key string, ttl time.Duration) error {
	h, s := m.lookup(kindBan, key)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl <= 0 {
		s.t.delete(h)
		return nil
	}
	e := s.t.find(h)
	exp := expiry(now, ttl)
	if e != nil && e.exp > exp {
		return nil // a longer ban stands
	}
	m.put(s, h, e, entry{exp: exp}, now)
	return nil
}

// Banned implements BanList.
func (m *Memory) Banned(_ context.Context, key string) (bool, time.Duration, error) {
	h, s := m.lookup(kindBan, key)
	now := m.now()
	s.mu.Lock()
	var e entry
	if p := s.t.find(h); p != nil {
		e = *p
	}
	s.mu.Unlock()
	if e.exp <= now {
		return false, 0, nil
	}
	return true, time.Duration(e.exp - now), nil
}

// Len returns the number of keys held, idle ones included.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.t.n
		s.mu.Unlock()
	}
	return n
}

// put stores e under h in s (locked): in place when cur, h's current entry, is not
// nil, else as a new key (insert).
func (m *Memory) put(s *shard, h uint64, cur *entry, e entry, now int64) {
	if cur != nil {
		*cur = e
		return
	}
	m.insert(s, h, e, now)
}

// insert adds the absent key h to s (locked). It first drops idle entries among a
// small sample of the shard's keys (from a slot picked by h's unused bits, so as random
// as the secret-seeded hash) and, when the shard is full, evicts the sampled entry
// closest to idle, so a shard never exceeds perShard keys.
func (m *Memory) insert(s *shard, h uint64, e entry, now int64) {
	full := s.t.n >= m.perShard
	want := 2
	if full {
		want = evictSample
	}
	var buf [evictSample]slot
	var victim slot
	for _, c := range s.t.sample(buf[:0], h>>20, want, 4*evictSample) {
		if c.e.exp <= now {
			s.t.delete(c.h)
			full = false
		} else if victim.h == 0 || c.e.exp < victim.e.exp {
			victim = c
		}
	}
	if full && victim.h != 0 {
		s.t.delete(victim.h)
	}
	s.t.insert(h, e)
}

// expiry is now plus ttl in nanoseconds, saturating: a ttl near the largest Duration
// (a signature valid for centuries) must not wrap into an entry that has already
// expired.
func expiry(now int64, ttl time.Duration) int64 {
	if e := now + int64(ttl); e >= now {
		return e
	}
	return math.MaxInt64
}
