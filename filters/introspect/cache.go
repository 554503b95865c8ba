package introspect

import (
	"sync"
	"time"
)

// cache holds introspection results by token hash, each until its own deadline. It
// never holds more than its bound: a full cache drops expired entries it meets, then
// an arbitrary one.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]cached
}

type cached struct {
	res   *result
	until time.Time
}

func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	return &cache{max: size, m: make(map[[32]byte]cached)}
}

// get returns the live result for k, or nil.
func (c *cache) get(k [32]byte, now time.Time) *result {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	if !now.Before(e.until) {
		delete(c.m, k)
		return nil
	}
	return e.res
}

// put stores r under k until the deadline.
func (c *cache) put(k [32]byte, r *result, now, until time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[k] = cached{res: r, until: until}
}

func (c *cache) evict(now time.Time) {
	n := 0
	for k, e := range c.m {
		if e.until.Before(now) {
			delete(c.m, k)
			return
		}
		if n++; n >= 8 {
			break
		}
	}
	for k := range c.m {
		delete(c.m, k)
		return
	}
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
