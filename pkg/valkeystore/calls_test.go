package valkeystore

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// A server that stops answering must not make calls wait past their timeout. valkey-go
// keeps a timed-out command in its connection's ring until the server answers, and a
// command finding the ring full waits for a slot whatever its context says: before the
// store counted outstanding commands, 4,696 Takes on a paused server with a 100ms
// timeout left 2,648 of them blocked 5s later (found by a second reader's review).
func TestPausedServerDoesNotBlockCalls(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, func(o *Options) { o.Timeout = 100 * time.Millisecond })
	lim := store.Limit{Rate: 10, Period: time.Second}
	unpause := pause(t, srv) // CLIENT PAUSE WRITE for 5s
	// More decisions than valkey-go's rings hold (1024 slots per connection, one
	// connection per 2 Ps up to 4): each is a single call on a key of its own.
	const n = 4096 + 600
	var done, saturated atomic.Int64
	for i := range n {
		go func() {
			_, err := s.Take(context.Background(), "paused:"+strconv.Itoa(i), 1, lim)
			if errors.Is(err, errSaturated) {
				saturated.Add(1)
			}
			if err == nil {
				t.Errorf("Take %d succeeded on a paused server", i)
			}
			done.Add(1)
		}()
	}
	waitWithin(t, 3*time.Second, "every Take to return on a paused server (100ms timeout)", func() bool { return done.Load() == n })
	if saturated.Load() == 0 {
		t.Errorf("no Take was refused for too many outstanding calls")
	}
	if got := s.calls.n.Load(); got > DefaultMaxOutstanding {
		t.Errorf("%d commands outstanding, more than %d", got, DefaultMaxOutstanding)
	}
	// Every other kind of call is bounded the same way while the server is paused.
	ctx := context.Background()
	start := time.Now()
	_, errOnce := s.Once(ctx, "paused-once", time.Minute)
	_, errIncr := s.Incr(ctx, "paused-incr", time.Minute)
	errBan := s.Ban(ctx, "paused-ban", time.Minute)
	if errOnce == nil || errIncr == nil || errBan == nil {
		t.Errorf("writes on a paused server: once %v, incr %v, ban %v", errOnce, errIncr, errBan)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three calls on a paused server took %v (timeout 100ms each)", d)
	}
	unpause()
	waitFor(t, "a Take to succeed after the pause", func() bool {
		res, err := s.Take(ctx, "paused:after", 1, lim)
		return err == nil && res.Allowed
	})
	assertIdle(t, s)
}

// At MaxOutstanding commands with the server, the next call fails at once, and calls
// succeed again once the server has answered.
func TestMaxOutstanding(t *testing.T) {
	srv := redisharness.Start(t)
	s := newStore(t, srv, func(o *Options) { o.Timeout = 5 * time.Second; o.MaxOutstanding = 3 })
	lim := store.Limit{Rate: 10, Period: time.Second}
	unpause := pause(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 3 {
		go func() { _, _ = s.Take(ctx, "max:"+strconv.Itoa(i), 1, lim) }()
	}
	waitFor(t, "three commands outstanding", func() bool { return s.calls.n.Load() == 3 })
	start := time.Now()
	if _, err := s.Take(context.Background(), "max:4", 1, lim); !errors.Is(err, errSaturated) {
		t.Fatalf("fourth Take: %v, want %v", err, errSaturated)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing the fourth call took %v", d)
	}
	cancel() // the callers leave; their commands stay counted until the server answers
	time.Sleep(50 * time.Millisecond)
	if got := s.calls.n.Load(); got != 3 {
		t.Errorf("%d commands counted after the callers left, want 3 until the server answers", got)
	}
	unpause()
	waitFor(t, "the commands to be answered", func() bool { return s.calls.n.Load() == 0 })
	if res, err := s.Take(context.Background(), "max:5", 1, lim); err != nil || !res.Allowed {
		t.Fatalf("after the pause: %+v %v", res, err)
	}
}
