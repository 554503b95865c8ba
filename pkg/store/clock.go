package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// ClockTick is the resolution of a Memory store's clock: while the store is in use, a
// goroutine it owns reads the monotonic clock every ClockTick and publishes the value,
// so a decision reads the time with one atomic load.
//
// Why: on the VMs we measure on, reading the clock (time.Now, time.Since) costs 50-100
// ns, as much as the rest of a Take; a limiter decision is meant to cost under 100 ns.
//
// What it costs in accuracy: the time a decision sees is at most one tick behind the
// real time while the process gets the CPU (a starved ticker lags more, and the bound
// below widens by that lag), and two decisions a tick apart may see it in either order. GCRA's bound
// over an interval of length W becomes B + (W+ClockTick)·R/P admitted, and a client
// that keeps asking gets at least (W−ClockTick)·R/P − 1 (docs/ratelimit.md): for a
// limit of 1000/s, one request either way. TTLs (replay windows, bans, counters) may
// last up to one tick longer.
const ClockTick = time.Millisecond

// clockIdleTicks is how many ticks without a read stop the ticking goroutine; the next
// read starts a new one. An idle sidecar pays nothing for the clock.
const clockIdleTicks = 100

// coarseClock is a monotonic nanosecond clock read with an atomic load. The goroutine
// that refreshes it runs only while the clock is read, and Close stops it.
type coarseClock struct {
	base    time.Time
	now     atomic.Int64 // nanoseconds since base, +1; refreshed every ClockTick
	read    atomic.Bool  // the clock was read since the last tick
	running atomic.Bool  // a ticker is live, so now is at most a tick old

	mu     sync.Mutex // orders starting and stopping tickers
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newCoarseClock() *coarseClock {
	return &coarseClock{base: time.Now(), stop: make(chan struct{})}
}

// fresh reads the monotonic clock: nanoseconds since base, +1 so that 0 means never.
func (c *coarseClock) fresh() int64 { return int64(time.Since(c.base)) + 1 }

// Now returns the time in nanoseconds since the clock was made, at most ClockTick old.
func (c *coarseClock) Now() int64 {
	if c.running.Load() {
		if !c.read.Load() { // one write per tick, not one per read: no cache-line ping-pong
			c.read.Store(true)
		}
		return c.now.Load()
	}
	return c.start()
}

// start reads the clock directly and starts a ticker unless one runs or the clock is
// closed (a closed clock still answers, reading the clock each time).
func (c *coarseClock) start() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.fresh() // read under mu: a ticker started meanwhile published no later time
	if c.running.Load() || c.closed {
		return n
	}
	c.now.Store(n)
	c.read.Store(true)
	c.running.Store(true)
	c.wg.Add(1)
	go c.tick()
	return n
}

// tick refreshes now every ClockTick until Close, or until the clock goes unread for
// clockIdleTicks ticks.
func (c *coarseClock) tick() {
	defer c.wg.Done()
	t := time.NewTicker(ClockTick)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-c.stop:
			c.running.Store(false)
			return
		case <-t.C:
		}
		c.now.Store(c.fresh())
		if c.read.Swap(false) {
			idle = 0
			continue
		}
		if idle++; idle < clockIdleTicks {
			continue
		}
		c.mu.Lock()
		if !c.read.Load() { // a read since the Swap keeps the ticker alive
			c.running.Store(false)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		idle = 0
	}
}

// Close stops the ticker and waits for it; later reads go to the clock directly.
func (c *coarseClock) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
	c.mu.Unlock()
	c.wg.Wait()
}
