package bruteforce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/valkeystore"
	"github.com/portcullis/portcullis/test/redisharness"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// waits records the delays Check asked for, instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) Wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) last() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.d) == 0 {
		return 0
	}
	return w.d[len(w.d)-1]
}

type fixture struct {
	f      *Filter
	clk    *clock
	waits  *waits
	mu     sync.Mutex
	events []Event
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	fx := &fixture{clk: &clock{}, waits: &waits{}}
	fx.clk.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	m := store.NewMemory(store.MemoryOptions{Clock: fx.clk.Now})
	o := Options{
		Counter: m, Bans: m,
		Low: 3, Medium: 5, High: 8, Critical: 12,
		Delay: 100 * time.Millisecond, MaxDelay: time.Second,
		BanDuration: time.Minute, MaxBan: 10 * time.Minute,
		Allowlist:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		CredentialID: func(r *engine.Request) string { return r.Header.Get("X-Api-Key") },
		Wait:         fx.waits.Wait,
		OnLevel: func(e Event) {
			fx.mu.Lock()
			fx.events = append(fx.events, e)
			fx.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&o)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	fx.f = f
	return fx
}

func req(ip, key string) *engine.Request {
	r := &engine.Request{Header: http.Header{}, Peer: engine.Peer{IP: netip.MustParseAddr(ip)}}
	if key != "" {
		r.Header.Set("X-Api-Key", key)
	}
	return r
}

var authFailure = &engine.Decision{Status: http.StatusUnauthorized, Reason: "apikey.unknown", DecidedBy: "apikey"}

func (fx *fixture) fail(r *engine.Request, n int) {
	for range n {
		fx.f.Observe(context.Background(), r, authFailure)
	}
}

func (fx *fixture) check(t *testing.T, r *engine.Request) *engine.Denial {
	t.Helper()
	err := fx.f.Check(context.Background(), r, &engine.Decision{})
	if err == nil {
		return nil
	}
	var den *engine.Denial
	if !errors.As(err, &den) {
		t.Fatalf("technical error: %v", err)
	}
	return den
}

func TestEscalation(t *testing.T) {
	fx := newFixture(t, nil)
	attacker := req("192.0.2.66", "")
	steps := []struct {
		failures int           // total so far
		delay    time.Duration // expected wait on the next Check (0: none)
		banned   bool
	}{
		{2, 0, false},
		{3, 100 * time.Millisecond, false}, // low
		{4, 100 * time.Millisecond, false},
		{5, 200 * time.Millisecond, false}, // medium: doubling
		{6, 400 * time.Millisecond, false},
		{7, 800 * time.Millisecond, false},
		{8, 0, true}, // high: banned
	}
	done := 0
	for _, st := range steps {
		fx.fail(attacker, st.failures-done)
		done = st.failures
		before := len(fx.waits.d)
		den := fx.check(t, attacker)
		switch {
		case st.banned:
			if den == nil || den.Status != http.StatusTooManyRequests || den.Reason != ReasonBanned || den.Header.Get("Retry-After") != "60" {
				t.Fatalf("%d failures: not banned: %v", st.failures, den)
			}
		case den != nil:
			t.Fatalf("%d failures: denied early", st.failures)
		case st.delay == 0 && len(fx.waits.d) != before:
			t.Fatalf("%d failures: delayed", st.failures)
		case st.delay > 0 && fx.waits.last() != st.delay:
			t.Fatalf("%d failures: delay %v, want %v", st.failures, fx.waits.last(), st.delay)
		}
	}
	// Another client is unaffected.
	if den := fx.check(t, req("192.0.2.67", "")); den != nil {
		t.Fatal("an innocent client was denied")
	}
	// The ban expires; the next failure bans again, twice as long.
	fx.clk.Advance(time.Minute)
	if den := fx.check(t, attacker); den != nil {
		t.Fatal("ban did not expire")
	}
	fx.fail(attacker, 1)
	if den := fx.check(t, attacker); den == nil || den.Header.Get("Retry-After") != "120" {
		t.Fatalf("second ban: %v", den)
	}
	// Critical: the longest ban.
	fx.clk.Advance(2 * time.Minute)
	fx.fail(attacker, 3)
	if den := fx.check(t, attacker); den == nil || den.Header.Get("Retry-After") != "600" {
		t.Fatalf("critical ban: %v", den)
	}
	levels := []Level{}
	for _, e := range fx.events {
		if e.Kind == "ip" && (len(levels) == 0 || levels[len(levels)-1] != e.Level) {
			levels = append(levels, e.Level)
		}
	}
	want := []Level{LevelLow, LevelMedium, LevelHigh, LevelCritical}
	if len(levels) != len(want) {
		t.Fatalf("level events %v, want %v", levels, want)
	}
	for i := range want {
		if levels[i] != want[i] {
			t.Fatalf("level events %v, want %v", levels, want)
		}
	}
}

// TestCredentialStuffing: one credential attacked from many addresses is banned for
// everyone, while each address stays under its own threshold.
func TestCredentialStuffing(t *testing.T) {
	fx := newFixture(t, nil)
	for i := range 8 {
		fx.fail(req(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String(), "victim-key"), 1)
	}
	if den := fx.check(t, req("198.51.100.1", "victim-key")); den == nil {
		t.Fatal("attacked credential not banned")
	}
	if den := fx.check(t, req("198.51.100.1", "other-key")); den != nil {
		t.Fatal("a fresh client with another credential was banned")
	}
	for _, e := range fx.events {
		if e.Kind == "credential" && e.Key == "victim-key" {
			t.Fatal("the credential itself reached an event")
		}
	}
}

func TestWhatCounts(t *testing.T) {
	tests := []struct {
		name   string
		d      engine.Decision
		ip     string
		counts bool
	}{
		{"authenticator 401", *authFailure, "192.0.2.1", true},
		{"missing credential", engine.Decision{Status: 401, Reason: "auth.missing", DecidedBy: "authenticate"}, "192.0.2.1", false},
		{"forbidden", engine.Decision{Status: 403, Reason: "scope.missing", DecidedBy: "scopes"}, "192.0.2.1", false},
		{"allowed", engine.Decision{Allow: true, Status: 200}, "192.0.2.1", false},
		{"allowlisted", *authFailure, "10.1.2.3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, nil)
			r := req(tc.ip, "")
			for range 8 {
				fx.f.Observe(context.Background(), r, &tc.d)
			}
			if banned := fx.check(t, r) != nil; banned != tc.counts {
				t.Fatalf("banned = %v, want %v", banned, tc.counts)
			}
		})
	}
	fx := newFixture(t, func(o *Options) { o.CountMissing = true; o.Status = http.StatusForbidden })
	r := req("192.0.2.1", "")
	for range 8 {
		fx.f.Observe(context.Background(), r, &engine.Decision{Status: 401, Reason: "auth.missing", DecidedBy: "authenticate"})
	}
	if den := fx.check(t, r); den == nil || den.Status != http.StatusForbidden {
		t.Fatalf("CountMissing with 403: %v", den)
	}
}

func TestTimerWaitHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := timerWait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("timerWait = %v", err)
	}
	if err := timerWait(context.Background(), time.Microsecond); err != nil {
		t.Fatal(err)
	}
}

func TestNewValidation(t *testing.T) {
	m := store.NewMemory(store.MemoryOptions{})
	bad := []Options{
		{},
		{Counter: m, Bans: m, Low: 10, Medium: 5},
		{Counter: m, Bans: m, Status: 401},
		{Counter: m, Bans: m, Delay: time.Minute, MaxDelay: time.Second},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	if _, err := New(Options{Counter: m, Bans: m}); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}

func TestDoubled(t *testing.T) {
	if d := doubled(time.Minute, 1<<40, time.Hour); d != time.Hour {
		t.Fatalf("doubled overflowed: %v", d)
	}
	if d := doubled(time.Minute, 2, time.Hour); d != 4*time.Minute {
		t.Fatalf("doubled = %v", d)
	}
}

// TestSharedAcrossReplicas: two replicas on one Valkey/Redis store; failures split
// between them add up, and the ban one sets is enforced by the other.
func TestSharedAcrossReplicas(t *testing.T) {
	srv := redisharness.Start(t)
	var replicas []*Filter
	for range 2 {
		vs, err := valkeystore.New(valkeystore.Options{Addrs: []string{srv.Addr()}, Timeout: 2 * time.Second, BanCacheTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(vs.Close)
		f, err := New(Options{Counter: vs, Bans: vs, High: 8, Critical: 12, Low: 3, Medium: 5,
			Wait: func(context.Context, time.Duration) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, f)
	}
	attacker := req("2001:db8::66", "")
	for i := range 8 {
		replicas[i%2].Observe(context.Background(), attacker, authFailure)
	}
	for i, f := range replicas {
		if err := f.Check(context.Background(), attacker, &engine.Decision{}); err == nil {
			t.Fatalf("replica %d does not enforce the shared ban", i)
		}
	}
}

// A client given an IPv6 /64 can guess from a fresh address every time: by default
// its whole network is one counted client (found by a second reader's review). With
// a /128 prefix each address counts alone; other networks and IPv4 clients are
// unaffected.
func TestIPv6NetworkCountsAsOneClient(t *testing.T) {
	for _, tc := range []struct {
		prefix int
		banned bool
	}{{0, true}, {64, true}, {48, true}, {128, false}} {
		t.Run(fmt.Sprintf("/%d", tc.prefix), func(t *testing.T) {
			fx := newFixture(t, func(o *Options) { o.IPv6Prefix = tc.prefix })
			for i := range 8 { // High is 8
				fx.fail(req(fmt.Sprintf("2001:db8:1:2::%x", i+1), ""), 1)
			}
			if den := fx.check(t, req("2001:db8:1:2:ffff::1", "")); (den != nil) != tc.banned {
				t.Fatalf("a new address in the same /64: denied %v, want %v", den, tc.banned)
			}
			if den := fx.check(t, req("2001:db8:2::1", "")); den != nil {
				t.Fatal("a client in another /48 was banned")
			}
			for i := range 8 {
				fx.fail(req(fmt.Sprintf("203.0.113.%d", i+1), ""), 1)
			}
			if den := fx.check(t, req("203.0.113.200", "")); den != nil {
				t.Fatal("IPv4 clients are counted per address")
			}
		})
	}
	m := store.NewMemory(store.MemoryOptions{})
	for _, p := range []int{47, 129} {
		if _, err := New(Options{Counter: m, Bans: m, IPv6Prefix: p}); err == nil {
			t.Errorf("ipv6 prefix /%d accepted", p)
		}
	}
}
