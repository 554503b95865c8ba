package valkeystore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/valkey-io/valkey-go"
)

// DefaultMaxOutstanding is Options.MaxOutstanding's default: half of the 1024 slots
// valkey-go's ring gives each connection, so no command can wait for a slot even when
// all of them go to one connection.
const DefaultMaxOutstanding = 512

// errSaturated is a call refused because MaxOutstanding commands are still with the
// server; the Guard's failure policy answers the decision.
var errSaturated = errors.New("too many calls still awaiting the server")

// calls hands commands to valkey-go without ever letting a caller wait past its
// context. valkey-go keeps a command it was given until the server answers or the
// connection fails, whether or not the caller still waits, and a command that finds
// its connection's ring of slots full waits for one whatever its context says: on a
// server that stops answering, timed-out calls would fill the rings and every later
// call would block for as long as the server does. So each command runs under the
// store's lifetime context, not the caller's, and is counted from the moment it is
// handed over until valkey-go is done with it; at max the next call fails at once.
type calls struct {
	client valkey.Client
	max    int64
	n      atomic.Int64 // commands valkey-go holds for us
	life   context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup // the goroutines of calls whose callers may have left
}

func newCalls(client valkey.Client, max int) *calls {
	if max <= 0 {
		max = DefaultMaxOutstanding
	}
	life, stop := context.WithCancel(context.Background())
	return &calls{client: client, max: int64(max), life: life, stop: stop}
}

// acquire counts one more command, or reports false when max are outstanding.
func (c *calls) acquire() bool {
	if c.n.Add(1) > c.max {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *calls) release() { c.n.Add(-1) }

// do runs f, which makes one call on the client it is given, on its own goroutine and
// returns its result, or ctx's error once ctx is done (the command stays counted until
// valkey-go is done with it).
func (c *calls) do(ctx context.Context, f callFunc) valkey.ValkeyResult {
	if err := ctx.Err(); err != nil {
		return valkey.NewErrorResult(err) // nobody waits for it: not sent
	}
	if !c.acquire() {
		return valkey.NewErrorResult(errSaturated)
	}
	res := make(chan valkey.ValkeyResult, 1)
	c.wg.Go(func() {
		defer c.release()
		res <- f(c.life, c.client)
	})
	select {
	case r := <-res:
		return r
	case <-ctx.Done():
		return valkey.NewErrorResult(ctx.Err())
	}
}

// inline runs f on the calling goroutine, which waits for valkey-go to be done with
// the command: for a goroutine that has no caller to answer in time (a batch's runner,
// whose members wait with their own deadline).
func (c *calls) inline(f callFunc) valkey.ValkeyResult {
	if !c.acquire() {
		return valkey.NewErrorResult(errSaturated)
	}
	defer c.release()
	return f(c.life, c.client)
}

// close ends every command still outstanding and waits for their goroutines.
func (c *calls) close() {
	c.stop()
	c.wg.Wait()
}
