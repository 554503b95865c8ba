package hmac

import (
	"context"
	"errors"
	"sync"
	"time"
)

// OnceSet remembers keys for a while: Once reports whether key was unseen and marks it
// seen for ttl. pkg/store's shared implementations satisfy it.
type OnceSet interface {
	Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// ErrReplaySetFull is returned by MemoryOnceSet when every entry is still live. The
// request then fails as a technical error (deny 503 by default) instead of evicting a
// live entry, which would reopen a replay window.
var ErrReplaySetFull = errors.New("replay set full")

// MemoryOnceSet is a bounded, in-process OnceSet for a single replica. Expired entries
// are dropped lazily as new ones arrive; no goroutine runs. Memory grows with use up
// to the bound.
type MemoryOnceSet struct {
	mu      sync.Mutex
	now     func() time.Time
	max     int
	entries map[string]time.Time // key -> expiry
	queue   []queued             // ring buffer in insertion order
	head, n int
}

type queued struct {
	key     string
	expires time.Time
}

// NewMemoryOnceSet returns a set holding at most max live entries (max <= 0:
// DefaultReplayCapacity). now is the clock (nil: time.Now).
func NewMemoryOnceSet(max int, now func() time.Time) *MemoryOnceSet {
	if max <= 0 {
		max = DefaultReplayCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryOnceSet{now: now, max: max, entries: make(map[string]time.Time)}
}

// Once implements OnceSet.
func (s *MemoryOnceSet) Once(_ context.Context, key string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if exp, ok := s.entries[key]; ok && now.Before(exp) {
		return false, nil
	}
	s.evictExpired(now)
	if s.n == len(s.queue) && !s.grow() {
		return false, ErrReplaySetFull
	}
	exp := now.Add(ttl)
	s.entries[key] = exp
	s.queue[(s.head+s.n)%len(s.queue)] = queued{key: key, expires: exp}
	s.n++
	return true, nil
}

// evictExpired drops entries from the oldest end while they have expired. An entry
// re-armed after expiry has a newer queue element; the stale one only frees its slot.
func (s *MemoryOnceSet) evictExpired(now time.Time) {
	for s.n > 0 {
		q := &s.queue[s.head]
		if now.Before(q.expires) {
			return
		}
		if exp, ok := s.entries[q.key]; ok && exp.Equal(q.expires) {
			delete(s.entries, q.key)
		}
		*q = queued{}
		s.head = (s.head + 1) % len(s.queue)
		s.n--
	}
}

// grow enlarges the full ring buffer (doubling, up to max), reporting false at max.
func (s *MemoryOnceSet) grow() bool {
	if len(s.queue) >= s.max {
		return false
	}
	q := make([]queued, min(max(2*len(s.queue), 64), s.max))
	for i := 0; i < s.n; i++ {
		q[i] = s.queue[(s.head+i)%len(s.queue)]
	}
	s.queue, s.head = q, 0
	return true
}

// Len returns the number of queued entries (live or awaiting eviction).
func (s *MemoryOnceSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
