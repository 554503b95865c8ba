package jwt

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// After Close, a request with an unknown key id within the early-refresh interval waited
// for a fetch that would never run, until its own context ended (found by a second
// reader's review). It now returns at once.
func TestUnknownKIDAfterCloseDoesNotHang(t *testing.T) {
	k := newKey(t, ES256, "a")
	s := newJWKSServer(t, jwks(t, k))
	clock := &testClock{now: testNow}
	a := remoteAuth(t, s, clock, nil)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	tok := k.raw(t, `{"alg":"ES256","kid":"unknown-1"}`, mustJSON(t, claims(nil)))
	// first caller: returns (await sees r.done).
	done1 := make(chan error, 1)
	go func() { done1 <- authErr(a, tok) }()
	select {
	case err := <-done1:
		_ = err
	case <-time.After(5 * time.Second):
		t.Fatal("first request after Close hung")
	}
	tok2 := k.raw(t, `{"alg":"ES256","kid":"unknown-2"}`, mustJSON(t, claims(nil)))
	done2 := make(chan error, 1)
	go func() { done2 <- authErr(a, tok2) }()
	select {
	case err := <-done2:
		_ = err
	case <-time.After(3 * time.Second):
		t.Fatal("second request with an unknown kid after Close hangs (refreshEarly waits on r.early without r.done)")
	}
}

// Requests that carry the same unseen token share one verification. The caller that
// started it used to lend it its context, so when that caller gave up while the
// verification waited for an unknown-kid refresh, every caller sharing it was denied
// unknown_kid. The verification now runs without the caller's cancellation, bounded by
// the fetch timeout, and each caller waits under its own context.
func TestCanceledCallerDoesNotFailSharedVerification(t *testing.T) {
	a1, b := newKey(t, ES256, "a"), newKey(t, ES256, "b")
	s := newJWKSServer(t, jwks(t, a1))
	clock := &testClock{now: testNow}
	a := remoteAuth(t, s, clock, func(o *Options) { o.Keys.Remote.Timeout = 5 * time.Second })
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	hold := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) })
	s.set(func(s *jwksServer) { s.hold = hold })
	fetched := s.fetches.Load()
	tok := b.token(t, claims(nil)) // kid "b": not in the key set yet

	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(ctx1, bearerRequest(tok))
		done1 <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); s.fetches.Load() == fetched; {
		if time.Now().After(deadline) {
			t.Fatal("the unknown kid did not start a refresh")
		}
		time.Sleep(time.Millisecond)
	}
	done2 := make(chan error, 1)
	go func() { done2 <- authErr(a, tok) }()
	time.Sleep(100 * time.Millisecond) // let the second caller join the flight

	cancel1()
	select {
	case err := <-done1:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled caller: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("canceled caller did not return")
	}
	s.set(func(s *jwksServer) { s.body = jwks(t, a1, b) })
	release.Do(func() { close(hold) })
	select {
	case err := <-done2:
		if err != nil {
			t.Fatalf("caller sharing the verification: %v (%s), want accepted", err, reasonOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("caller sharing the verification did not return")
	}
}
