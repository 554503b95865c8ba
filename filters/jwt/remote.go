package jwt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// KeyStatus is the state of a provider's keys, for readiness detail and logs.
type KeyStatus struct {
	URL         string    // JWKS URL in use ("" for static keys or before discovery)
	Keys        int       // keys in the set in use (0: not ready)
	LastSuccess time.Time // last successful fetch
	LastAttempt time.Time // last fetch attempt
	LastError   error     // error of the last attempt; nil after a success
}

// RemoteKeys fetches a JWK Set over HTTPS in the background and serves the last good
// one. It owns one goroutine, started by Start and stopped by Close (or by the Start
// context ending). Refreshes follow Cache-Control max-age within [MinRefresh,
// MaxRefresh]; a failed fetch keeps the last good set and is retried with backoff.
// Tokens with an unknown kid can trigger an early refresh, at most one per
// UnknownKIDInterval. Requests never perform I/O themselves: they ask the owner
// goroutine and wait for it, bounded by their context.
type RemoteKeys struct {
	name   string
	url    string // configured JWKS URL ("" with discovery)
	issuer string // discovery issuer ("" without discovery)
	opts   RemoteOptions
	now    func() time.Time
	client *http.Client
	set    atomic.Pointer[KeySet]
	kick   chan struct{}
	onSwap func() // called (outside locks) after a refresh retired keys

	mu        sync.Mutex
	status    KeyStatus
	jwksURL   string        // configured or discovered
	next      chan struct{} // closed when the next fetch to start completes
	early     chan struct{} // completion of the last early refresh
	lastEarly time.Time
	failures  int
	started   bool
	first     chan struct{} // closed when the first fetch completes
	cancel    context.CancelFunc
	done      chan struct{}
}

// NewRemoteKeys returns a fetcher for jwksURL, or for the jwks_uri that OIDC discovery
// on issuer announces when jwksURL is empty. Nothing is fetched before Start.
func NewRemoteKeys(name, jwksURL, issuer string, o RemoteOptions, now func() time.Time) (*RemoteKeys, error) {
	o = o.withDefaults()
	if (jwksURL == "") == (issuer == "") {
		return nil, errors.New("remote keys: exactly one of a JWKS URL and a discovery issuer is required")
	}
	client, err := newHTTPClient(o)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &RemoteKeys{
		name: name, url: jwksURL, issuer: issuer, opts: o, now: now, client: client,
		kick: make(chan struct{}, 1), jwksURL: jwksURL,
		next: make(chan struct{}), first: make(chan struct{}), done: make(chan struct{}),
		status: KeyStatus{URL: jwksURL},
	}, nil
}

var errNotStarted = errors.New("remote keys: not started")

// Start launches the fetch goroutine. With WaitFirstFetch it waits for the first fetch
// (at most FirstFetchTimeout) and returns its error; the goroutine keeps retrying.
func (r *RemoteKeys) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("remote keys: already started")
	}
	r.started = true
	runCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.mu.Unlock()
	go r.run(runCtx)
	if !r.opts.WaitFirstFetch {
		return nil
	}
	t := time.NewTimer(r.opts.FirstFetchTimeout)
	defer t.Stop()
	select {
	case <-r.first:
		if err := r.Status().LastError; err != nil {
			return fmt.Errorf("jwt provider %q: first key fetch: %w", r.name, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("jwt provider %q: first key fetch: timed out after %s", r.name, r.opts.FirstFetchTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the goroutine and waits for it. It is safe to call more than once.
func (r *RemoteKeys) Close() error {
	r.mu.Lock()
	started, cancel := r.started, r.cancel
	r.mu.Unlock()
	if started {
		cancel()
		<-r.done
	}
	r.client.CloseIdleConnections()
	return nil
}

// Current returns the key set in use (nil before the first successful fetch).
func (r *RemoteKeys) Current() *KeySet { return r.set.Load() }

// Ready reports whether a key set is loaded.
func (r *RemoteKeys) Ready() bool { return r.set.Load() != nil }

// Status returns a snapshot of the fetch state.
func (r *RemoteKeys) Status() KeyStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Refresh asks for a fetch now, waits for it and returns its error. It is not rate
// limited: it is for operators and tests, not for request paths.
func (r *RemoteKeys) Refresh(ctx context.Context) error {
	r.mu.Lock()
	if !r.started {
		r.mu.Unlock()
		return errNotStarted
	}
	ch := r.next
	r.mu.Unlock()
	if !r.await(ctx, ch) {
		return fmt.Errorf("remote keys refresh: %w", context.Cause(ctx))
	}
	return r.Status().LastError
}

// refreshEarly is called when a token names an unknown kid (or no keys are loaded). At
// most one early refresh starts per UnknownKIDInterval; callers within the interval
// wait for that one. It reports whether a refresh completed while waiting.
func (r *RemoteKeys) refreshEarly(ctx context.Context) bool {
	r.mu.Lock()
	if !r.started {
		r.mu.Unlock()
		return false
	}
	now := r.now()
	if r.early != nil && now.Sub(r.lastEarly) < r.opts.UnknownKIDInterval {
		ch := r.early
		r.mu.Unlock()
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		case <-r.done: // closed: the fetch this waits for will never run
			return false
		}
	}
	r.lastEarly = now
	r.early = r.next
	ch := r.next
	r.mu.Unlock()
	return r.await(ctx, ch)
}

// await kicks the goroutine and waits for ch, the completion of the next fetch.
func (r *RemoteKeys) await(ctx context.Context, ch chan struct{}) bool {
	select {
	case r.kick <- struct{}{}:
	default: // a kick is already pending
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-r.done:
		return false
	}
}

// run is the fetch loop, owned by Start and stopped through its context.
func (r *RemoteKeys) run(ctx context.Context) {
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		delay := r.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.kick:
		}
	}
}

// fetch performs one attempt, publishes its result and returns the delay until the next.
func (r *RemoteKeys) fetch(ctx context.Context) time.Duration {
	r.mu.Lock()
	done, jwksURL := r.next, r.jwksURL
	r.next = make(chan struct{})
	r.mu.Unlock()

	start := time.Now()
	set, maxAge, jwksURL, err := r.load(ctx, jwksURL)
	took := time.Since(start)
	var retired bool
	if err == nil {
		retired = r.publish(set)
	}
	delay := r.record(jwksURL, set, maxAge, err)
	close(done)
	select {
	case <-r.first:
	default:
		close(r.first)
	}
	if retired && r.onSwap != nil {
		r.onSwap()
	}
	if r.opts.OnFetch != nil {
		st := r.Status()
		r.opts.OnFetch(FetchEvent{Provider: r.name, URL: st.URL, Keys: st.Keys, Err: err, Took: took, Next: delay})
	}
	return delay
}

// record updates the status after an attempt and returns the next delay.
func (r *RemoteKeys) record(jwksURL string, set *KeySet, maxAge string, err error) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.status.LastAttempt = now
	r.status.LastError = err
	if err != nil {
		r.failures++
		if r.issuer != "" {
			r.jwksURL = "" // discover again: the jwks_uri may have moved
		}
		r.status.Keys = r.set.Load().Len()
		backoff := time.Second << min(r.failures-1, 16)
		return min(backoff, r.opts.MinRefresh)
	}
	r.failures = 0
	r.jwksURL = jwksURL
	r.status.URL = jwksURL
	r.status.LastSuccess = now
	r.status.Keys = set.Len()
	return refreshInterval(maxAge, r.opts)
}

// publish installs set, keeping the *Key of every key that did not change (so cached
// verifications survive) and retiring the keys that left. It reports whether any did.
func (r *RemoteKeys) publish(set *KeySet) bool {
	old := r.set.Load()
	var prev map[string]*Key
	if old != nil {
		prev = make(map[string]*Key, len(old.keys))
		for _, k := range old.keys {
			prev[k.identity] = k
		}
	}
	set.byKID = make(map[string]*Key, len(set.keys))
	set.noKID = set.noKID[:0]
	for i, k := range set.keys {
		if o, ok := prev[k.identity]; ok {
			set.keys[i], k = o, o
			delete(prev, k.identity)
		}
		if k.ID != "" {
			set.byKID[k.ID] = k
		} else {
			set.noKID = append(set.noKID, k)
		}
	}
	r.set.Store(set)
	for _, k := range prev {
		k.retired.Store(true)
	}
	return len(prev) > 0
}

// load discovers the JWKS URL when needed, fetches and parses the set.
func (r *RemoteKeys) load(ctx context.Context, jwksURL string) (*KeySet, string, string, error) {
	var err error
	if jwksURL == "" {
		if jwksURL, err = r.discover(ctx); err != nil {
			return nil, "", "", err
		}
	}
	body, hdr, err := r.get(ctx, jwksURL)
	if err != nil {
		return nil, "", jwksURL, err
	}
	set, err := ParseKeySet(body)
	if err != nil {
		return nil, "", jwksURL, fmt.Errorf("jwks from %s: %w", jwksURL, err)
	}
	return set, hdr.Get("Cache-Control"), jwksURL, nil
}

// discover reads the OpenID Provider configuration of the issuer (OpenID Connect
// Discovery 1.0 §4): its "issuer" must be identical to the configured one.
func (r *RemoteKeys) discover(ctx context.Context) (string, error) {
	u := trimSlash(r.issuer) + "/.well-known/openid-configuration"
	body, _, err := r.get(ctx, u)
	if err != nil {
		return "", err
	}
	doc, err := parseJSONObject(body)
	if err != nil {
		return "", fmt.Errorf("discovery document %s: %w", u, err)
	}
	if iss, _ := doc["issuer"].(string); iss != r.issuer {
		return "", fmt.Errorf("discovery document %s: issuer %q is not %q", u, iss, r.issuer)
	}
	jwks, _ := doc["jwks_uri"].(string)
	if err := checkURL(jwks, r.opts.AllowHTTP); err != nil {
		return "", fmt.Errorf("discovery document %s: jwks_uri: %w", u, err)
	}
	return jwks, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
