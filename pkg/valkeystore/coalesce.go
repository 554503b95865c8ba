package valkeystore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"
)

// maxBatch caps the decisions one script call carries. A Take that finds its key's
// pending batch full sends its own call at once, outside the chain.
const maxBatch = 256

// argCosts is the index of the first cost in a script's ARGV (after interval, burst).
const argCosts = 2

// coalescerShards spreads keys over this many locks, so unrelated keys rarely contend.
const coalescerShards = 16

// maxInflight is how many script calls one key may have in flight at once. More than
// one keeps the server busy while a reply travels back, but makes smaller batches and
// more server work: measured at 64 streams on one key with the server sharing a core
// with the load, 1 reached 62-75% of the always-allow floor, 2 reached 60-67%, 4
// reached 43-49% (docs/ratelimit.md). Each call is atomic on the server, so concurrent
// calls on one key would change nothing about what is admitted.
const maxInflight = 1

// limitKey identifies the decisions that may share one script call: one server key
// under one limit. key is the fresh string from Store.key, never the caller's buffer.
type limitKey struct {
	key      string
	interval int64
	burst    uint64
}

// coalescer keeps at most maxInflight script calls in flight per limitKey. A decision
// on a key with fewer calls in flight is sent at once; decisions arriving while the key
// has maxInflight calls out join the key's pending batch, and when a call returns the
// pending batch goes out as one call, made by the first of its members to take the
// batch's lead token. The mutexes guard only the maps and the batches' bookkeeping; no
// lock is held across a call.
type coalescer struct {
	client  valkey.Client
	timeout time.Duration // bounds every decision: Options.Timeout
	seed    maphash.Seed
	shards  [coalescerShards]coalescerShard
	calls   atomic.Int64 // script calls made, for tests
	// latency is a moving average of script call durations, in nanoseconds. While it
	// is above half the timeout, decisions do not queue behind a call in flight: a
	// batch waits for that call and then makes its own, two round trips that would
	// not fit the timeout, so each decision sends its own call (one round trip, as
	// without coalescing) until the store is fast again.
	latency atomic.Int64
}

// observe folds one call's duration into the latency average (weight 1/8; concurrent
// updates may lose one, which only delays the average a little).
func (c *coalescer) observe(d time.Duration) {
	old := c.latency.Load()
	c.latency.Store(old + (int64(d)-old)/8)
}

// queueing reports whether decisions may wait behind a call in flight.
func (c *coalescer) queueing() bool { return c.latency.Load() <= int64(c.timeout/2) }

type coalescerShard struct {
	mu sync.Mutex
	// inflight holds the keys with a call in flight: how many, and the pending batch
	// (nil while none); a key leaves it when its last call returns with nothing pending.
	inflight map[limitKey]keyCalls
	_        [48]byte // keeps shards on separate cache lines
}

// keyCalls is one key's calls in flight and its pending batch.
type keyCalls struct {
	calls   int
	pending *batch
}

// batch is the decisions waiting to share one call. Until its turn (the previous call
// for the key returned) it is its key's pending batch and accepts members; then one
// member takes lead, makes the call, stores vals or err and closes done.
type batch struct {
	args     *[]string // interval, burst, then one cost per member (pooled)
	deadline time.Time // the first member's start + timeout: bounds the batch's call
	n        int       // members joined
	waiting  int       // members that have not given up
	turn     bool      // its call may start; no member joins any more
	lead     chan struct{}
	done     chan struct{}
	vals     []int64 // 4 per member, valid after done
	err      error
}

// argsPool recycles batches' argument slices.
var argsPool = sync.Pool{New: func() any { s := make([]string, 0, 16); return &s }}

func newCoalescer(client valkey.Client, timeout time.Duration) *coalescer {
	c := &coalescer{client: client, timeout: timeout, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].inflight = make(map[limitKey]keyCalls)
	}
	return c
}

// send makes one gcraScript call for key with ARGV args (a direct call, so that args
// can stay on the caller's stack).
func (c *coalescer) send(ctx context.Context, key string, args []string) ([]int64, error) {
	c.calls.Add(1)
	start := time.Now()
	v, err := gcraScript.Exec(ctx, c.client, []string{key}, args).AsIntSlice()
	switch {
	case err == nil:
		c.observe(time.Since(start))
	case errors.Is(err, context.DeadlineExceeded):
		// The call was cut short, so its duration understates the latency: count the
		// whole timeout, which stops queueing at once until calls are fast again.
		c.latency.Store(max(c.latency.Load(), int64(c.timeout)))
	}
	return v, err
}

func (c *coalescer) shard(key string) *coalescerShard {
	return &c.shards[maphash.String(c.seed, key)%coalescerShards]
}

// take makes one decision of cost on lk and returns its 4 script integers, within the
// coalescer's timeout of being called and at most until ctx is done; an error is the
// call's or ctx's.
//
// Only a decision sent on its own pays for a timer (context.WithTimeout). A batch's
// call is bounded by the batch's deadline, its first member's start plus the timeout:
// every member joined later and the batch's turn came when the call before it, bounded
// by an earlier deadline, returned, so no member waits longer than the timeout, and a
// hot key costs one timer per batch instead of one per decision.
func (c *coalescer) take(ctx context.Context, lk limitKey, cost uint64) ([4]int64, error) {
	costArg := strconv.FormatUint(cost, 10) // small costs do not allocate
	if !c.queueing() {
		return c.single(ctx, lk, costArg)
	}
	sh := c.shard(lk.key)
	sh.mu.Lock()
	kc := sh.inflight[lk]
	b := kc.pending
	switch {
	case kc.calls < maxInflight: // room for another call: send at once
		kc.calls++
		sh.inflight[lk] = kc
		sh.mu.Unlock()
		v, err := c.single(ctx, lk, costArg)
		c.handOff(sh, lk)
		return v, err
	case b == nil:
		b = newBatch(lk, time.Now().Add(c.timeout))
		kc.pending = b
		sh.inflight[lk] = kc
	case b.n == maxBatch:
		sh.mu.Unlock()
		return c.single(ctx, lk, costArg)
	}
	i := b.n
	b.n++
	b.waiting++
	*b.args = append(*b.args, costArg)
	sh.mu.Unlock()
	return c.wait(ctx, sh, lk, b, i)
}

func newBatch(lk limitKey, deadline time.Time) *batch {
	args := argsPool.Get().(*[]string)
	*args = append((*args)[:0], strconv.FormatInt(lk.interval, 10), strconv.FormatUint(lk.burst, 10))
	return &batch{args: args, deadline: deadline, lead: make(chan struct{}, 1), done: make(chan struct{})}
}

// single makes a call for one decision under the caller's ctx and the timeout.
func (c *coalescer) single(ctx context.Context, lk limitKey, costArg string) ([4]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	args := []string{strconv.FormatInt(lk.interval, 10), strconv.FormatUint(lk.burst, 10), costArg}
	v, err := c.send(ctx, lk.key, args)
	if err != nil {
		return [4]int64{}, err
	}
	if len(v) != 4 {
		return [4]int64{}, fmt.Errorf("script returned %d values, want 4", len(v))
	}
	return [4]int64(v), nil
}

// wait waits for member i's result, making the batch's call if it takes the lead.
func (c *coalescer) wait(ctx context.Context, sh *coalescerShard, lk limitKey, b *batch, i int) ([4]int64, error) {
	select {
	case <-b.lead:
		c.call(ctx, sh, lk, b)
	case <-b.done:
	case <-ctx.Done():
		c.abandon(sh, lk, b, i)
		return [4]int64{}, ctx.Err()
	}
	if b.err != nil {
		return [4]int64{}, b.err
	}
	return [4]int64(b.vals[4*i : 4*i+4]), nil
}

// call makes b's script call, passes the key's turn on, and releases the members. The
// call is bounded by the batch's deadline, and runs under a context of its own when
// others wait on it, so that one caller giving up does not fail the rest.
func (c *coalescer) call(ctx context.Context, sh *coalescerShard, lk limitKey, b *batch) {
	sh.mu.Lock()
	alone := b.waiting == 1
	sh.mu.Unlock()
	if !alone {
		ctx = context.Background()
	}
	ctx, cancel := context.WithDeadline(ctx, b.deadline)
	defer cancel()
	vals, err := c.send(ctx, lk.key, *b.args)
	if err == nil && len(vals) != 4*b.n {
		err = fmt.Errorf("script returned %d values for %d decisions", len(vals), b.n)
	}
	c.handOff(sh, lk)
	releaseArgs(b)
	b.vals, b.err = vals, err
	close(b.done)
}

// handOff is called when one of lk's calls returned (or a batch given the turn was
// dropped): the pending batch, if any member still waits on it, takes over that call's
// place; else lk has one call fewer in flight, and leaves the map at none.
func (c *coalescer) handOff(sh *coalescerShard, lk limitKey) {
	sh.mu.Lock()
	kc := sh.inflight[lk]
	next := kc.pending
	if next == nil || next.waiting == 0 {
		// Nothing pending, or only members that gave up (their costs are zeroed):
		// dropping that batch changes nothing on the server.
		kc.pending = nil
		if kc.calls--; kc.calls <= 0 {
			delete(sh.inflight, lk)
		} else {
			sh.inflight[lk] = kc
		}
		sh.mu.Unlock()
		if next != nil {
			releaseArgs(next)
		}
		return
	}
	kc.pending = nil
	sh.inflight[lk] = kc
	next.turn = true
	next.lead <- struct{}{} // buffered and empty: never blocks; sent under mu for abandon
	sh.mu.Unlock()
}

// abandon withdraws member i, whose context is done, from b. Before the turn its cost
// becomes 0 (a cost of 0 only reports the state); after it the call may already count
// it. The last member to leave a batch whose lead nobody took drops the batch.
func (c *coalescer) abandon(sh *coalescerShard, lk limitKey, b *batch, i int) {
	sh.mu.Lock()
	b.waiting--
	if !b.turn {
		(*b.args)[argCosts+i] = "0"
		sh.mu.Unlock()
		return
	}
	if b.waiting == 0 {
		select {
		case <-b.lead: // nobody will make the call
			sh.mu.Unlock()
			releaseArgs(b)
			c.handOff(sh, lk)
			return
		default:
		}
	}
	sh.mu.Unlock()
}

// releaseArgs returns b's arguments to the pool; only the member that made (or
// dropped) b's call calls it, after which nothing reads them.
func releaseArgs(b *batch) {
	args := b.args
	b.args = nil
	if cap(*args) > 4*maxBatch {
		return
	}
	clear(*args)
	argsPool.Put(args)
}
