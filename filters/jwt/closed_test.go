package jwt

import (
	"context"
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
