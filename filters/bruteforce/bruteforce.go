// Package bruteforce is the bruteforce stage: it counts authentication failures per
// client address and per attempted credential, and answers with an escalating
// response by threat level:
//
//	none      fewer than Low failures in the window: nothing
//	low       from Low failures: each request from the client waits Delay
//	medium    from Medium: the wait doubles per further failure, up to MaxDelay
//	high      from High: a ban of BanDuration, doubling with each ban within BanMemory,
//	          up to MaxBan
//	critical  from Critical: a ban of MaxBan
//
// The stage is both an engine.Observer (it sees every final decision and counts a 401
// from the authenticate phase) and an engine.Filter for the inspect phase, where it
// denies a banned client (429 or 403, with Retry-After) before any expensive check, or
// delays a suspicious one. The delay is a timer selected against the request's context:
// no goroutine sleeps beyond the bound, and a client that gives up frees its slot.
//
// Counts and bans go through pkg/store, so replicas sharing a Valkey store share them.
// A failure window starts at the first failure and is not extended by later ones.
// Allowlisted networks are never counted, delayed or banned.
package bruteforce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
)

// Level is a threat level.
type Level uint8

// The threat levels, in increasing order.
const (
	LevelNone Level = iota
	LevelLow
	LevelMedium
	LevelHigh
	LevelCritical
)

var levelNames = [...]string{"none", "low", "medium", "high", "critical"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// ReasonBanned is the reason of a banned client's denial.
const ReasonBanned = "bruteforce.banned"

// Defaults.
const (
	DefaultWindow      = 15 * time.Minute
	DefaultLow         = 5
	DefaultMedium      = 10
	DefaultHigh        = 20
	DefaultCritical    = 50
	DefaultDelay       = 250 * time.Millisecond
	DefaultMaxDelay    = 2 * time.Second
	DefaultBanDuration = time.Minute
	DefaultMaxBan      = time.Hour
	DefaultBanMemory   = 24 * time.Hour
	DefaultIPv6Prefix  = 64 // one subscriber's network: a client holds a whole /64
)

// Event reports a level change or a ban (OnLevel).
type Event struct {
	Kind     string // "ip" or "credential"
	Key      string // the address (an IPv6 client's network), or the credential's hash (never the credential)
	Level    Level
	Failures int64
	Ban      time.Duration // the ban just set; 0 when none
}

// Options configure a Filter. Zero values take the defaults above.
type Options struct {
	// Counter and Bans hold the state; usually the same store.Store (a store.Guard
	// for Valkey). Required.
	Counter store.Counter
	Bans    store.BanList
	// Window is how long failures count, from the first one.
	Window time.Duration
	// Low, Medium, High and Critical are the failure counts at which each level starts;
	// they must increase.
	Low, Medium, High, Critical int64
	// Delay is the wait at the low level; MaxDelay bounds every wait.
	Delay, MaxDelay time.Duration
	// BanDuration is the first ban; each later ban within BanMemory doubles it, up to
	// MaxBan, which is also the critical level's ban.
	BanDuration, MaxBan, BanMemory time.Duration
	// Allowlist holds networks never counted, delayed or banned.
	Allowlist []netip.Prefix
	// IPv6Prefix counts an IPv6 client by its network of this many bits (48-128),
	// since a client given a /64 can use a fresh address for every guess. IPv4
	// clients are counted per address. Default 64.
	IPv6Prefix int
	// Status is the banned client's status: 429 (default) or 403.
	Status int
	// CountMissing also counts 401s for a missing credential (reason "auth.missing").
	CountMissing bool
	// CredentialID returns the credential a request attempts (e.g. an API key id, a
	// username), or "". It is hashed before use. Nil counts per address only.
	CredentialID func(r *engine.Request) string
	// OnLevel is called on every level change and ban (metrics, audit log).
	OnLevel func(Event)
	// OnError is called when counting in Observe fails (Observe cannot return it).
	OnError func(error)
	// Wait waits for d or until ctx ends; nil uses a timer.
	Wait func(ctx context.Context, d time.Duration) error
}

// Filter is a compiled bruteforce stage, safe for concurrent use.
type Filter struct {
	o      Options
	denied *engine.Denial // template; copied per denial for its header
}

var (
	_ engine.Filter   = (*Filter)(nil)
	_ engine.Observer = (*Filter)(nil)
)

// New validates o and applies the defaults.
func New(o Options) (*Filter, error) {
	if o.Counter == nil || o.Bans == nil {
		return nil, errors.New("bruteforce: no store")
	}
	setDefault(&o.Window, DefaultWindow)
	setDefault(&o.Low, DefaultLow)
	setDefault(&o.Medium, DefaultMedium)
	setDefault(&o.High, DefaultHigh)
	setDefault(&o.Critical, DefaultCritical)
	setDefault(&o.Delay, DefaultDelay)
	setDefault(&o.MaxDelay, DefaultMaxDelay)
	setDefault(&o.BanDuration, DefaultBanDuration)
	setDefault(&o.MaxBan, DefaultMaxBan)
	setDefault(&o.BanMemory, DefaultBanMemory)
	setDefault(&o.Status, http.StatusTooManyRequests)
	setDefault(&o.IPv6Prefix, DefaultIPv6Prefix)
	if o.Wait == nil {
		o.Wait = timerWait
	}
	switch {
	case !(o.Low < o.Medium && o.Medium < o.High && o.High < o.Critical):
		return nil, fmt.Errorf("bruteforce: thresholds must increase (low %d, medium %d, high %d, critical %d)", o.Low, o.Medium, o.High, o.Critical)
	case o.Status != http.StatusTooManyRequests && o.Status != http.StatusForbidden:
		return nil, fmt.Errorf("bruteforce: status %d: want 429 or 403", o.Status)
	case o.Delay > o.MaxDelay || o.BanDuration > o.MaxBan:
		return nil, errors.New("bruteforce: delay above max_delay or ban above max_ban")
	case o.IPv6Prefix < 48 || o.IPv6Prefix > 128:
		return nil, fmt.Errorf("bruteforce: ipv6 prefix /%d: want 48 to 128", o.IPv6Prefix)
	}
	return &Filter{o: o, denied: engine.Deny(o.Status, ReasonBanned, "too many failed attempts")}, nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// level returns the threat level of n failures.
func (f *Filter) level(n int64) Level {
	switch {
	case n >= f.o.Critical:
		return LevelCritical
	case n >= f.o.High:
		return LevelHigh
	case n >= f.o.Medium:
		return LevelMedium
	case n >= f.o.Low:
		return LevelLow
	}
	return LevelNone
}

// delay returns the wait for n failures (low and medium levels only).
func (f *Filter) delay(n int64) time.Duration {
	switch f.level(n) {
	case LevelLow:
		return f.o.Delay
	case LevelMedium:
		return doubled(f.o.Delay, n-f.o.Medium+1, f.o.MaxDelay)
	}
	return 0
}

func (f *Filter) allowlisted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range f.o.Allowlist {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// subject is one counted thing: a client address or a credential.
type subject struct{ kind, id string }

// subjects returns what r is counted as: its address, and its credential when known.
// Keys have no ':' so each lands on its own cluster slot.
func (f *Filter) subjects(r *engine.Request) []subject {
	out := make([]subject, 0, 2)
	if ip := r.Peer.IP.Unmap().WithZone(""); ip.IsValid() {
		id := ip.String()
		if ip.Is6() && f.o.IPv6Prefix < 128 {
			id = netip.PrefixFrom(ip, f.o.IPv6Prefix).Masked().String()
		}
		out = append(out, subject{"ip", id})
	}
	if f.o.CredentialID != nil {
		if c := f.o.CredentialID(r); c != "" {
			sum := sha256.Sum256([]byte(c))
			out = append(out, subject{"credential", hex.EncodeToString(sum[:16])})
		}
	}
	return out
}

func counterKey(s subject) string { return "bf.n." + s.kind + "." + noColon(s.id) }
func banKey(s subject) string     { return "bf.ban." + s.kind + "." + noColon(s.id) }
func bansKey(s subject) string    { return "bf.bans." + s.kind + "." + noColon(s.id) }

// noColon replaces ':' (the store's scope separator, present in IPv6) with '-'.
func noColon(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

func timerWait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
