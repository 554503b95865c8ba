package valkeystore

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// delayProxy forwards TCP to target, delivering each chunk a client sends delay after
// it arrived (in order): a store whose every round trip takes at least delay.
func delayProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, up) })
			wg.Go(func() { delayedCopy(up, c, delay) })
		}
	})
	return ln.Addr().String()
}

// delayedCopy copies src to dst, each chunk written delay after it was read.
func delayedCopy(dst io.WriteCloser, src io.Reader, delay time.Duration) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	for range ch { // drain, so the reader can finish
	}
}

// A hot key on a store whose round trip (120ms) is more than half the timeout (220ms):
// a batch would wait for the call in flight and then make its own, two round trips
// past the timeout, so every decision on the key would fail, and each failure counts
// against the Guard's breaker for all keys. The first batch fails while the latency
// average learns (a timeout counts as the whole timeout); from then on decisions are
// sent one by one and succeed, as without coalescing, and the connection stays up
// (valkey-go's pipelined mode abandons a timed-out call instead of closing it).
func TestHotKeyOnASlowStore(t *testing.T) {
	srv := redisharness.Start(t)
	addr := delayProxy(t, srv.Addr(), 120*time.Millisecond)
	s, err := New(Options{Addrs: []string{addr}, KeyPrefix: "slow:", Timeout: 220 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	// Warm up outside the timeout: the connection's handshake and loading the script
	// are round trips of their own.
	if err := s.c.Do(context.Background(), s.c.B().ScriptLoad().Script(gcraSource).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	lim := store.Limit{Rate: 1_000_000, Period: time.Second}
	var early, ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	settled, deadline := start.Add(700*time.Millisecond), start.Add(2*time.Second)
	for range 16 {
		wg.Go(func() {
			for i := 0; i < 200 && time.Now().Before(deadline); i++ {
				began := time.Now()
				_, err := s.Take(context.Background(), "hot:k", 1, lim)
				switch {
				case began.Before(settled):
					if err != nil {
						early.Add(1)
					}
				case err != nil:
					failed.Add(1)
				default:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("120ms round trips, 220ms timeout, one hot key: %d failed while learning; then %d decided, %d failed; latency average %v",
		early.Load(), ok.Load(), failed.Load(), time.Duration(s.rl.latency.Load()))
	if early.Load() > 64 {
		t.Errorf("%d decisions failed while the latency was learnt, want at most a few batches' worth", early.Load())
	}
	if ok.Load() == 0 || failed.Load()*20 > ok.Load()+failed.Load() {
		t.Fatalf("%d of %d decisions failed on a store answering within the timeout", failed.Load(), ok.Load()+failed.Load())
	}
}
