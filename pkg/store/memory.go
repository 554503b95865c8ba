package store

import (
	"context"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync"
	"time"
)

// DefaultMaxKeys is the key bound of a Memory store when MemoryOptions.MaxKeys is 0.
const DefaultMaxKeys = 1 << 20

// BytesPerKey is the documented upper bound of heap memory per stored key, measured by
// TestMemoryBound with a million keys (the average is about half of it). A Memory store
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
	// Clock returns the current time; nil means time.Now.
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

// shard is one lock and its map, padded to its own cache lines.
type shard struct {
	mu sync.Mutex
	m  map[uint64]entry
	_  [48]byte
}

// Memory is the in-memory Store for one replica. Keys are kept as 64-bit maphash
// values under a per-process random seed, so a key costs a fixed size whatever its
// length, and a client cannot choose keys that collide (two keys sharing a hash would
// share state; with a million keys the chance of any collision is about 3·10^-8).
// Locks are held only for a map lookup and a few integer operations.
type Memory struct {
	seeds    [kinds]maphash.Seed
	shards   []shard
	mask     uint64
	perShard int
	clock    func() time.Time // nil: time.Since(base), reading only the monotonic clock
	base     time.Time
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
		m.base = time.Now()
	}
	for i := range m.seeds {
		m.seeds[i] = maphash.MakeSeed()
	}
	for i := range m.shards {
		m.shards[i].m = make(map[uint64]entry)
	}
	return m
}

// now returns nanoseconds since the store was created (monotonic with time.Now).
// It starts at 1 so that 0 always means "idle".
func (m *Memory) now() int64 {
	if m.clock == nil {
		return int64(time.Since(m.base)) + 1
	}
	return int64(m.clock().Sub(m.base)) + 1
}

// lookup hashes key in the key space k and returns its hash and shard.
func (m *Memory) lookup(k kind, key string) (uint64, *shard) {
	h := maphash.String(m.seeds[k], key)
	return h, &m.shards[(h>>32)&m.mask]
}

// Take implements Limiter with GCRA. It does not allocate for an existing key.
func (m *Memory) Take(_ context.Context, key string, cost uint64, lim Limit) (Result, error) {
	if !lim.Valid() {
		return Result{}, ErrInvalidLimit
	}
	h, s := m.lookup(kindLimit, key)
	now := m.now()
	s.mu.Lock()
	e, ok := s.m[h]
	tat, res := GCRA(e.exp, now, cost, lim)
	if res.Allowed && tat > now && (tat != e.exp || !ok) {
		m.put(s, h, entry{exp: tat}, ok, now)
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
	e, ok := s.m[h]
	if ok && e.exp > now {
		return false, nil
	}
	if ttl > 0 {
		m.put(s, h, entry{exp: now + int64(ttl)}, ok, now)
	}
	return true, nil
}

// Incr implements Counter.
func (m *Memory) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	h, s := m.lookup(kindCount, key)
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[h]
	if !ok || e.exp <= now {
		e = entry{n: 0, exp: now + int64(max(ttl, 1))}
	}
	e.n++
	m.put(s, h, e, ok, now)
	return e.n, nil
}

// Count implements Counter.
func (m *Memory) Count(_ context.Context, key string) (int64, error) {
	h, s := m.lookup(kindCount, key)
	now := m.now()
	s.mu.Lock()
	e, ok := s.m[h]
	s.mu.Unlock()
	if !ok || e.exp <= now {
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
		delete(s.m, h)
		return nil
	}
	_, ok := s.m[h]
	m.put(s, h, entry{exp: now + int64(ttl)}, ok, now)
	return nil
}

// Banned implements BanList.
func (m *Memory) Banned(_ context.Context, key string) (bool, time.Duration, error) {
	h, s := m.lookup(kindBan, key)
	now := m.now()
	s.mu.Lock()
	e, ok := s.m[h]
	s.mu.Unlock()
	if !ok || e.exp <= now {
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
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// put stores e under h in s (locked). Inserting a new key first drops idle entries
// among a small random sample and, when the shard is full, evicts the sampled entry
// closest to idle, so a shard never exceeds perShard keys.
func (m *Memory) put(s *shard, h uint64, e entry, exists bool, now int64) {
	if !exists {
		full := len(s.m) >= m.perShard
		var victim uint64
		victimExp, seen, found := int64(0), 0, false
		for k, v := range s.m {
			if v.exp <= now {
				delete(s.m, k)
				full = false
			} else if !found || v.exp < victimExp {
				victim, victimExp, found = k, v.exp, true
			}
			seen++
			if seen >= evictSample || (!full && seen >= 2) {
				break
			}
		}
		if full && found {
			delete(s.m, victim)
		}
	}
	s.m[h] = e
}
