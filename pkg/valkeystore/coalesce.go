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

// coalescerShards spreads keys over this many locks, so unrelated keys rarely contend.
const coalescerShards = 16

// maxInflight is how many script calls one key may have in flight at once. More than
// one keeps the server busy while a reply travels back, but makes smaller batches and
// more server work: measured at 64 streams on one key (median of 24 short pairs
// against the always-allow floor, 2026-11-23, with the runner), 1 reached 64% with
// Redis on the load generator's core and 70.5% with Redis unpinned, 2 reached 62% and
// 65%, 3 reached 57.5% (docs/performance.md). Each call is atomic on the server, so
// concurrent calls on one key would change nothing about what is admitted.
const maxInflight = 1

// limitKey identifies the decisions that may share one script call: one server key
// under one limit. key is the fresh string from Store.key, never the caller's buffer.
type limitKey struct {
	key      string
	interval int64
	burst    uint64
}

// coalescer keeps at most maxInflight script calls in flight per limitKey. A decision
// on a key with fewer calls in flight is sent at once by its own goroutine; decisions
// arriving while the key has maxInflight calls out join the key's pending batch. When a
// call returns and a batch is pending, a runner goroutine sends it, and goes on sending
// the key's next pending batch each time its call returns, until none is pending. The
// mutexes guard only the maps and the batches' bookkeeping; no lock is held across a
// call.
//
// Why a runner, not one of the batch's members: the goroutine that sends the next call
// is woken when the previous call returns, and on a busy core a woken goroutine waits
// behind everything readied after it (the returning call's members and their gRPC
// writes). A member made leader waited ~0.5 ms that way per call at 64 streams on one
// key, a third of each round. Once a key's chain runs, the runner is the goroutine the
// client wakes with the reply, so it releases the members and sends the next batch
// before anything else runs; only a chain's first batch, started after a call sent on
// its own returns, waits for its new runner to be scheduled.
type coalescer struct {
	calls   *calls
	timeout time.Duration // bounds every decision: Options.Timeout
	seed    maphash.Seed
	shards  [coalescerShards]coalescerShard
	made    atomic.Int64 // script calls made, for tests
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

// slow records a call cut short by its deadline, or refused with too many calls
// outstanding: its duration would understate the latency, so the average becomes the
// whole timeout, which stops queueing at once until calls are fast again.
func (c *coalescer) slow() { c.latency.Store(max(c.latency.Load(), int64(c.timeout))) }

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
// for the key returned) it is its key's pending batch and accepts members; then the
// runner makes its call, stores res or err and closes done.
type batch struct {
	costs *[]uint64 // one per member, in arrival order (pooled)
	// ctx ends at the first member's start + timeout: no member waits longer. The
	// call itself is not bounded by it (see calls); the runner cancels it after the
	// call, which stops its timer.
	ctx     context.Context
	cancel  context.CancelFunc
	n       int  // members joined
	waiting int  // members that have not given up
	turn    bool // its call may start; no member joins any more
	done    chan struct{}
	res     [][4]int64 // one per member, valid after done
	err     error
}

// costsPool recycles batches' cost slices.
var costsPool = sync.Pool{New: func() any { s := make([]uint64, 0, 16); return &s }}

func newCoalescer(calls *calls, timeout time.Duration) *coalescer {
	c := &coalescer{calls: calls, timeout: timeout, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].inflight = make(map[limitKey]keyCalls)
	}
	return c
}

// callFunc makes one call on the client it is given, under the context it is given.
type callFunc = func(context.Context, valkey.Client) valkey.ValkeyResult

// send makes one gcraScript call for lk deciding costs in order through calls.do, so
// it returns when ctx is done at the latest, and writes each cost's result to res
// (len(costs) long).
func (c *coalescer) send(ctx context.Context, lk limitKey, costs []uint64, res [][4]int64) error {
	return c.sendBy(func(f callFunc) valkey.ValkeyResult { return c.calls.do(ctx, f) }, lk, costs, res)
}

// sendInline is send for a runner: it waits until valkey-go is done with the call.
func (c *coalescer) sendInline(lk limitKey, costs []uint64, res [][4]int64) error {
	return c.sendBy(c.calls.inline, lk, costs, res)
}

func (c *coalescer) sendBy(call func(callFunc) valkey.ValkeyResult, lk limitKey, costs []uint64, res [][4]int64) error {
	c.made.Add(1)
	// ARGV: interval, burst, then the costs as runs of (cost, count): a hot key's batch
	// of equal costs is two arguments, however many decisions it carries.
	var buf [8]string
	args := append(buf[:0], strconv.FormatInt(lk.interval, 10), strconv.FormatUint(lk.burst, 10))
	for i := 0; i < len(costs); {
		j := i + 1
		for j < len(costs) && costs[j] == costs[i] {
			j++
		}
		args = append(args, strconv.FormatUint(costs[i], 10), strconv.Itoa(j-i))
		i = j
	}
	exec := func(ctx context.Context, cl valkey.Client) valkey.ValkeyResult {
		return gcraScript.Exec(ctx, cl, []string{lk.key}, args)
	}
	start := time.Now()
	v, err := call(exec).ToArray()
	switch {
	case err == nil:
		c.observe(time.Since(start))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errSaturated):
		c.slow()
	}
	if err != nil {
		return err
	}
	if len(v) != 2 {
		return fmt.Errorf("script returned %d values, want 2", len(v))
	}
	d0, err0 := v[0].AsInt64()
	d1, err1 := v[1].AsInt64()
	if err := errors.Join(err0, err1); err != nil {
		return fmt.Errorf("script reply: %w", err)
	}
	if end := replay(lk.interval, lk.burst, float64(d0), costs, res); end != float64(d1) {
		// Never expected (both sides do the same IEEE double arithmetic); if it
		// happened the results would not be the server's, so they are not used.
		return fmt.Errorf("script ended at TAT %d µs, the client's replay at %.0f", d1, end)
	}
	return nil
}

func (c *coalescer) shard(key string) *coalescerShard {
	return &c.shards[maphash.String(c.seed, key)%coalescerShards]
}

// take makes one decision of cost on lk and returns its result as replay gives it
// ({allowed, remaining, retry_after_us, reset_after_us}), within the
// coalescer's timeout of being called and at most until ctx is done; an error is the
// call's or ctx's.
//
// A decision sent on its own waits under its own deadline (context.WithDeadline). A
// batch's members wait under the batch's, its first member's start plus the timeout:
// every member joined later, so none waits longer than the timeout, and a hot key
// costs one timer per batch instead of one per decision. A member that leaves at the
// deadline leaves its batch (see abandon); the call goes on without it.
func (c *coalescer) take(ctx context.Context, lk limitKey, cost uint64) ([4]int64, error) {
	if !c.queueing() {
		return c.single(ctx, lk, cost, time.Now().Add(c.timeout))
	}
	sh := c.shard(lk.key)
	sh.mu.Lock()
	kc := sh.inflight[lk]
	b := kc.pending
	switch {
	case kc.calls < maxInflight: // room for another call: send at once
		kc.calls++
		sh.inflight[lk] = kc
		// The deadline is taken under the lock, so a batch created after it (which
		// waits for this call) has a later one: no member waits past its own.
		deadline := time.Now().Add(c.timeout)
		sh.mu.Unlock()
		v, err := c.single(ctx, lk, cost, deadline)
		if next := c.returned(sh, lk); next != nil {
			go c.run(sh, lk, next)
		}
		return v, err
	case b == nil:
		b = newBatch(time.Now().Add(c.timeout))
		kc.pending = b
		sh.inflight[lk] = kc
	case b.n == maxBatch:
		sh.mu.Unlock()
		return c.single(ctx, lk, cost, time.Now().Add(c.timeout))
	}
	i := b.n
	b.n++
	b.waiting++
	*b.costs = append(*b.costs, cost)
	sh.mu.Unlock()
	select {
	case <-b.done:
	case <-b.ctx.Done():
		select {
		case <-b.done: // answered as the deadline passed: the answer stands
		default:
			c.abandon(sh, b, i)
			c.slow()
			return [4]int64{}, context.DeadlineExceeded
		}
	case <-ctx.Done():
		c.abandon(sh, b, i)
		return [4]int64{}, ctx.Err()
	}
	if b.err != nil {
		return [4]int64{}, b.err
	}
	return b.res[i], nil
}

func newBatch(deadline time.Time) *batch {
	costs := costsPool.Get().(*[]uint64)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	return &batch{costs: costs, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// single makes a call for one decision under the caller's ctx and deadline (its
// start plus the timeout).
func (c *coalescer) single(ctx context.Context, lk limitKey, cost uint64, deadline time.Time) ([4]int64, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var res [1][4]int64
	if err := c.send(ctx, lk, []uint64{cost}, res[:]); err != nil {
		return [4]int64{}, err
	}
	return res[0], nil
}

// run is lk's runner: it makes b's call, releases b's members, and goes on with the
// key's next pending batch while there is one. Each call is detached from every
// member, so one caller giving up does not fail the rest, and the runner waits until
// valkey-go is done with it (calls.inline): members wait under their batch's deadline
// instead. The goroutine ends when nothing is pending, or with the store (Close ends
// every outstanding call).
func (c *coalescer) run(sh *coalescerShard, lk limitKey, b *batch) {
	for b != nil {
		res := make([][4]int64, b.n)
		var err error
		if b.ctx.Err() != nil {
			// Past the batch's deadline every member has left or is leaving: a call
			// now would only count decisions nobody waits for.
			err = context.DeadlineExceeded
		} else {
			err = c.sendInline(lk, *b.costs, res)
		}
		releaseCosts(b)
		b.res, b.err = res, err
		// The key's state is updated before the members are woken, so a caller that
		// returns sees it with this call no longer in flight.
		next := c.returned(sh, lk)
		close(b.done)
		b.cancel()
		b = next
	}
}

// returned is called when one of lk's calls returned. It returns the pending batch,
// now given that call's place, for a runner to send; or, with
// nothing pending or only members that gave up, lk has one call fewer in flight (and
// leaves the map at none) and it returns nil.
func (c *coalescer) returned(sh *coalescerShard, lk limitKey) *batch {
	sh.mu.Lock()
	kc := sh.inflight[lk]
	next := kc.pending
	kc.pending = nil
	if next == nil || next.waiting == 0 {
		// Only members that gave up (their costs are zeroed): dropping that batch
		// changes nothing on the server.
		if kc.calls--; kc.calls <= 0 {
			delete(sh.inflight, lk)
		} else {
			sh.inflight[lk] = kc
		}
		sh.mu.Unlock()
		if next != nil {
			releaseCosts(next)
			next.cancel()
		}
		return nil
	}
	sh.inflight[lk] = kc
	next.turn = true
	sh.mu.Unlock()
	return next
}

// abandon withdraws member i, whose context is done, from b. Before the turn its cost
// becomes 0 (a cost of 0 only reports the state), and a batch every member left is
// dropped when its turn comes; after the turn the call may already count it.
func (c *coalescer) abandon(sh *coalescerShard, b *batch, i int) {
	sh.mu.Lock()
	b.waiting--
	if !b.turn {
		(*b.costs)[i] = 0
	}
	sh.mu.Unlock()
}

// releaseCosts returns b's costs to the pool; only b's runner (or returned, for a
// batch it drops) calls it, after which nothing reads them.
func releaseCosts(b *batch) {
	costs := b.costs
	b.costs = nil
	if cap(*costs) > maxBatch {
		return
	}
	*costs = (*costs)[:0]
	costsPool.Put(costs)
}
