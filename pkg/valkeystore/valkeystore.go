// Package valkeystore implements pkg/store's interfaces on Valkey or Redis 7+, for
// replicas that must share limits, counters, once-sets and bans. It is the only
// package that imports valkey-go.
//
// Rate-limit decisions are made by a server-side Lua script (EVALSHA, falling back to
// EVAL once after a server restart), so they are atomic; concurrent calls share
// connections through valkey-go's auto-pipelining. The script reads the server's clock
// (TIME), not the caller's: replicas with skewed clocks still agree, at the price of
// trusting one server clock (a failover to a replica whose clock differs shifts every
// key's state by the skew, once).
//
// # Coalescing
//
// Take keeps at most one script call in flight per key and limit. A Take on a key with
// no call in flight sends its call at once (no added latency when uncontended). Takes
// arriving while a call is in flight join the key's pending batch, and when the call
// returns the batch goes out as one call, made by a runner goroutine that then wakes
// the members and sends the next pending batch, and so on while the key stays busy.
// The script replies with the key's TAT before and after the batch, from which each
// member's result is computed in Go (replay). A batch holds at most 256 decisions: a Take
// that finds it full sends its own call. The script applies GCRA to the batch's costs
// in arrival order against one reading of the server's clock, exactly as that many
// sequential decisions at that instant would, so coalescing never changes what is
// admitted; it only saves round trips and server work on hot keys. A contended Take
// waits for at most the call in flight plus its own batch's call.
//
// A batch call is detached from every caller, so one caller giving up does not fail
// the others, and a failed call fails every decision in it (the Guard then applies
// each caller's policy). Its members wait until its first member's start plus
// Options.Timeout; later members joined later, so no decision waits longer than
// Timeout, and a hot key pays one timer per batch rather than one per decision.
// While the store is slow (a moving average of call times above Timeout/2, where a
// queued decision's two round trips would not fit), decisions do not queue: each sends
// its own call until calls are fast again. A caller whose own context ends first
// returns then. A caller that gives up before its batch is sent is withdrawn (its cost
// becomes 0); one that gives up after may still be counted, as with any timeout after
// sending.
//
// Keys are PREFIX + kind + ":{" + scope + "}" + rest, where scope is the caller's key
// up to its first ':' (filters put the limit's name there). The braces are a cluster
// hash tag: all keys of one limit live in one slot.
//
// Every call is bounded by Options.Timeout (default 50ms) on top of the caller's
// context; pkg/store.Guard adds the failure policy and circuit breaker. A caller that
// times out leaves its command with valkey-go, which keeps it until the server answers
// or the connection fails, and valkey-go makes a command wait for a free slot of its
// connection's ring whatever its context says. So commands are counted until
// valkey-go is done with them (see calls), and beyond Options.MaxOutstanding (512) a
// call fails at once: a server that stops answering costs each decision its timeout at
// most, never an unbounded wait for a slot.
package valkeystore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/valkey-io/valkey-go"
)

// Mode is how the servers are deployed.
type Mode string

// The deployment modes.
const (
	ModeStandalone Mode = "standalone" // one primary (the default)
	ModeCluster    Mode = "cluster"    // Valkey/Redis Cluster; Addrs are seed nodes
	ModeSentinel   Mode = "sentinel"   // Addrs are sentinels; MasterSet names the primary
)

// banCacheBytes bounds the client-side ban cache of each connection.
const banCacheBytes = 8 << 20

// Defaults.
const (
	DefaultTimeout     = 50 * time.Millisecond
	DefaultDialTimeout = time.Second
	DefaultKeyPrefix   = "portcullis:"
)

// Options configures a Store.
type Options struct {
	// Mode is the deployment mode; "" means standalone.
	Mode Mode
	// Addrs are host:port addresses: the server (standalone), seed nodes (cluster) or
	// sentinels (sentinel).
	Addrs []string
	// MasterSet is the sentinel master name (sentinel mode only).
	MasterSet string
	// Username and Password authenticate to the servers (AUTH); Password is the
	// resolved secret, never logged. Empty means no AUTH.
	Username string
	Password []byte
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	SentinelUsername string
	SentinelPassword []byte
	// TLS enables TLS to the servers (and the sentinels) when non-nil.
	TLS *tls.Config
	// DB selects the database (standalone and sentinel only).
	DB int
	// KeyPrefix starts every key; "" means DefaultKeyPrefix. It must not contain '{' or '}'.
	KeyPrefix string
	// Timeout bounds each call; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxOutstanding caps the commands handed to the client that the server has not
	// answered yet, counting those whose callers gave up; a call beyond it fails at
	// once. 0 means DefaultMaxOutstanding.
	MaxOutstanding int
	// DialTimeout bounds connecting; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// BanCacheTTL enables client-side caching of ban lookups for this long (the server
	// invalidates a cached entry when the ban changes). 0 disables it.
	BanCacheTTL time.Duration
	// Clock is used to compute a ban's remaining time from its stored expiry; nil
	// means time.Now.
	Clock func() time.Time
}

// Store is a store.Store on Valkey or Redis. It is safe for concurrent use.
type Store struct {
	c        valkey.Client
	calls    *calls
	prefix   string
	timeout  time.Duration
	banCache time.Duration
	clock    func() time.Time
	rl       *coalescer
}

var _ store.Store = (*Store)(nil)

// New connects to the servers. In standalone mode it succeeds even while the server
// is unreachable (calls fail until it answers, and the Guard's policy applies); in
// cluster and sentinel modes it needs one reachable node to learn the topology.
func New(o Options) (*Store, error) {
	opt, err := clientOption(o)
	if err != nil {
		return nil, err
	}
	c, err := valkey.NewClient(opt)
	if err != nil && (c == nil || !opt.ForceSingleClient) {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(o.Addrs, ","), err)
	}
	s := &Store{c: c, prefix: o.KeyPrefix, timeout: o.Timeout, banCache: o.BanCacheTTL, clock: o.Clock}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.calls = newCalls(c, o.MaxOutstanding)
	s.rl = newCoalescer(s.calls, s.timeout)
	return s, nil
}

func clientOption(o Options) (valkey.ClientOption, error) {
	if len(o.Addrs) == 0 {
		return valkey.ClientOption{}, errors.New("valkey: no address")
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return valkey.ClientOption{}, fmt.Errorf("valkey: key prefix %q must not contain braces", o.KeyPrefix)
	}
	opt := valkey.ClientOption{
		InitAddress: o.Addrs,
		Username:    o.Username,
		Password:    string(o.Password),
		TLSConfig:   o.TLS,
		SelectDB:    o.DB,
		ClientName:  "portcullis",
		// Always through the background pipeline: a lone command (the usual case for a
		// coalesced hot key) is otherwise sent in valkey-go's synchronous mode, where a
		// context deadline becomes the socket's deadline and a timeout closes the
		// connection, failing every other call on it and costing a reconnect. Pipelined,
		// a timed-out call is abandoned and the connection stays up
		// (TestHotKeyOnASlowStore).
		AlwaysPipelining: true,
	}
	opt.Dialer.Timeout = o.DialTimeout
	if opt.Dialer.Timeout <= 0 {
		opt.Dialer.Timeout = DefaultDialTimeout
	}
	if o.BanCacheTTL <= 0 {
		opt.DisableCache = true
	} else {
		// Only ban lookups are cached (a key and an expiry each, misses included):
		// valkey-go's default of 128 MiB per connection is far more than they need.
		opt.CacheSizeEachConn = banCacheBytes
	}
	switch o.Mode {
	case "", ModeStandalone:
		if len(o.Addrs) != 1 {
			return opt, fmt.Errorf("valkey: standalone mode takes one address, got %d", len(o.Addrs))
		}
		opt.ForceSingleClient = true
	case ModeCluster:
		if o.DB != 0 {
			return opt, errors.New("valkey: cluster mode has no databases")
		}
		opt.SelectDB = 0
	case ModeSentinel:
		if o.MasterSet == "" {
			return opt, errors.New("valkey: sentinel mode needs a master set name")
		}
		opt.Sentinel = valkey.SentinelOption{
			MasterSet: o.MasterSet,
			Username:  o.SentinelUsername,
			Password:  string(o.SentinelPassword),
			TLSConfig: o.TLS,
			Dialer:    opt.Dialer,
		}
	default:
		return opt, fmt.Errorf("valkey: unknown mode %q (want standalone, cluster or sentinel)", o.Mode)
	}
	return opt, nil
}

// Close ends the calls still outstanding and closes the connections.
func (s *Store) Close() {
	s.calls.close()
	s.c.Close()
}

// key builds PREFIX kind ":{" scope "}" rest. It copies key: the caller's buffer is
// not retained.
func (s *Store) key(kind, key string) string {
	scope, rest := key, ""
	if i := strings.IndexByte(key, ':'); i >= 0 {
		scope, rest = key[:i], key[i:]
	}
	var b strings.Builder
	b.Grow(len(s.prefix) + len(kind) + len(key) + 3)
	b.WriteString(s.prefix)
	b.WriteString(kind)
	b.WriteString(":{")
	b.WriteString(scope)
	b.WriteByte('}')
	b.WriteString(rest)
	return b.String()
}

// Take implements store.Limiter: one GCRA decision, coalesced with the concurrent
// decisions on the same key and limit into one script call (see the package doc).
func (s *Store) Take(ctx context.Context, key string, cost uint64, lim store.Limit) (store.Result, error) {
	if !lim.Valid() {
		return store.Result{}, store.ErrInvalidLimit
	}
	lk := limitKey{key: s.key("rl", key), interval: int64(lim.Interval()), burst: lim.EffectiveBurst()}
	v, err := s.rl.take(ctx, lk, cost)
	if err != nil {
		return store.Result{}, fmt.Errorf("valkey take: %w", err)
	}
	return store.Result{
		Allowed:    v[0] == 1,
		Remaining:  uint64(max(v[1], 0)),
		RetryAfter: time.Duration(max(v[2], 0)) * time.Microsecond,
		ResetAfter: time.Duration(max(v[3], 0)) * time.Microsecond,
		Limit:      lim,
	}, nil
}

// Once implements store.OnceSet with SET NX PX.
func (s *Store) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := s.c.B().Set().Key(s.key("once", key)).Value("1").Nx().PxMilliseconds(millis(ttl)).Build()
	err := s.calls.do(ctx, func(ctx context.Context, c valkey.Client) valkey.ValkeyResult { return c.Do(ctx, cmd) }).Error()
	switch {
	case err == nil:
		return true, nil
	case valkey.IsValkeyNil(err):
		return false, nil
	}
	return false, fmt.Errorf("valkey once: %w", err)
}

// Incr implements store.Counter with one script call.
func (s *Store) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	keys, args := []string{s.key("cnt", key)}, []string{strconv.FormatInt(millis(ttl), 10)}
	n, err := s.calls.do(ctx, func(ctx context.Context, c valkey.Client) valkey.ValkeyResult {
		return incrScript.Exec(ctx, c, keys, args)
	}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("valkey incr: %w", err)
	}
	return n, nil
}

// Count implements store.Counter.
func (s *Store) Count(ctx context.Context, key string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := s.c.B().Get().Key(s.key("cnt", key)).Build()
	n, err := s.calls.do(ctx, func(ctx context.Context, c valkey.Client) valkey.ValkeyResult { return c.Do(ctx, cmd) }).AsInt64()
	switch {
	case err == nil:
		return n, nil
	case valkey.IsValkeyNil(err):
		return 0, nil
	}
	return 0, fmt.Errorf("valkey count: %w", err)
}

// Ban implements store.BanList with one script call: it never shortens a ban. The value
// is the ban's expiry (Unix milliseconds) so a cached lookup can compute what remains;
// the key itself expires with the ban.
func (s *Store) Ban(ctx context.Context, key string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	k := s.key("ban", key)
	var err error
	if ttl <= 0 {
		cmd := s.c.B().Del().Key(k).Build()
		err = s.calls.do(ctx, func(ctx context.Context, c valkey.Client) valkey.ValkeyResult { return c.Do(ctx, cmd) }).Error()
	} else {
		keys := []string{k}
		args := []string{strconv.FormatInt(s.clock().Add(ttl).UnixMilli(), 10), strconv.FormatInt(millis(ttl), 10)}
		err = s.calls.do(ctx, func(ctx context.Context, c valkey.Client) valkey.ValkeyResult {
			return banScript.Exec(ctx, c, keys, args)
		}).Error()
	}
	if err != nil {
		return fmt.Errorf("valkey ban: %w", err)
	}
	return nil
}

// Banned implements store.BanList, from the client-side cache when BanCacheTTL is set.
func (s *Store) Banned(ctx context.Context, key string) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	k := s.key("ban", key)
	res := s.calls.do(ctx, func(ctx context.Context, c valkey.Client) valkey.ValkeyResult {
		if s.banCache > 0 {
			return c.DoCache(ctx, c.B().Get().Key(k).Cache(), s.banCache)
		}
		return c.Do(ctx, c.B().Get().Key(k).Build())
	})
	until, err := res.AsInt64()
	switch {
	case valkey.IsValkeyNil(err):
		return false, 0, nil
	case err != nil:
		return false, 0, fmt.Errorf("valkey banned: %w", err)
	}
	left := time.UnixMilli(until).Sub(s.clock())
	if left <= 0 {
		return false, 0, nil
	}
	return true, left, nil
}

// millis converts d to whole milliseconds, at least 1.
func millis(d time.Duration) int64 {
	return max(1, (int64(d)+int64(time.Millisecond)-1)/int64(time.Millisecond))
}
