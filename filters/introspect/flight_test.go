package introspect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

// One caller giving up (client disconnect, its own deadline) must not fail the other
// requests that carry the same token and share its in-flight introspection call: they
// failed with its "context canceled", a 503 (found by a second reader's review).
func TestCanceledCallerDoesNotFailSharedCall(t *testing.T) {
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"alice"}`))
	}))
	defer srv.Close()
	a, err := New(Options{Name: "as", Endpoint: srv.URL, AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	req := func() *engine.Request {
		r := enginetest.NewRequest("GET", "/")
		r.Header.Set("Authorization", "Bearer tok")
		return r
	}

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := a.Authenticate(ctxA, req()); errA <- err }()
	<-arrived // A's call is at the endpoint

	errB := make(chan error, 1)
	go func() { _, err := a.Authenticate(context.Background(), req()); errB <- err }()
	time.Sleep(200 * time.Millisecond) // let B join A's flight (ordering only, not asserted)

	cancelA() // client A goes away
	<-errA
	close(release) // from here on the endpoint answers at once
	if err := <-errB; err != nil {
		t.Fatalf("request B (live context) failed because request A was canceled: %v (endpoint calls: %d)", err, a.calls.Load())
	}
}
