package jwt

import (
	"sync"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// verified is the outcome of one full verification, shared by every request carrying
// the same token. It is immutable.
type verified struct {
	id  *engine.Identity
	key *Key
	reg registered
}

// tokenKey is the SHA-256 of the raw token: collision resistant, so a hit can only be
// the same token, and the cache never holds a credential.
type tokenKey [32]byte

// tokenCache is a bounded map of verified tokens, sharded to spread lock contention.
// A full shard first drops expired or retired entries it meets, then an arbitrary
// one (Go's map iteration order is randomized). It never holds more than its bound.
type tokenCache struct {
	shards   []cacheShard
	perShard int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[tokenKey]*verified
}

const cacheShards = 16

// newTokenCache returns a cache holding at most size entries (nil when size <= 0).
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	n := cacheShards
	if size < n {
		n = 1
	}
	c := &tokenCache{shards: make([]cacheShard, n), perShard: size / n}
	for i := range c.shards {
		c.shards[i].m = make(map[tokenKey]*verified)
	}
	return c
}

func (c *tokenCache) shard(k *tokenKey) *cacheShard {
	return &c.shards[int(k[0])%len(c.shards)]
}

// get returns the entry for k, or nil.
func (c *tokenCache) get(k *tokenKey) *verified {
	if c == nil {
		return nil
	}
	s := c.shard(k)
	s.mu.RLock()
	v := s.m[*k]
	s.mu.RUnlock()
	return v
}

// put stores v under k, evicting to stay within the bound.
func (c *tokenCache) put(k *tokenKey, v *verified, now time.Time) {
	if c == nil {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		s.evict(now.Unix())
	}
	s.m[*k] = v
}

// evict removes stale entries among the first few it meets, or one arbitrary entry.
func (s *cacheShard) evict(now int64) {
	const scan = 8
	seen, freed := 0, false
	for k, v := range s.m {
		if v.key.Retired() || (v.reg.hasExp && v.reg.exp <= now) {
			delete(s.m, k)
			freed = true
		}
		if seen++; seen >= scan {
			break
		}
	}
	if freed {
		return
	}
	for k := range s.m {
		delete(s.m, k)
		return
	}
}

// remove deletes k.
func (c *tokenCache) remove(k *tokenKey) {
	if c == nil {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	delete(s.m, *k)
	s.mu.Unlock()
}

// dropRetired removes every entry whose key a refresh removed.
func (c *tokenCache) dropRetired() {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if v.key.Retired() {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of cached tokens.
func (c *tokenCache) Len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
