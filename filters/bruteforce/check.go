package bruteforce

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Check denies a banned client or credential, and delays one at the low or medium
// level. Allowlisted clients pass at once. A store error is a technical failure (the
// stage's on_error applies); the context ending during a delay returns its error.
func (f *Filter) Check(ctx context.Context, r *engine.Request, d *engine.Decision) error {
	if f.allowlisted(r.Peer.IP) {
		return nil
	}
	var wait time.Duration
	for _, s := range f.subjects(r) {
		banned, left, err := f.o.Bans.Banned(ctx, banKey(s))
		if err != nil {
			return fmt.Errorf("bruteforce: ban lookup: %w", err)
		}
		if banned {
			den := *f.denied
			den.Header = http.Header{"Retry-After": {strconv.FormatInt(int64((left+time.Second-1)/time.Second), 10)}}
			return &den
		}
		n, err := f.o.Counter.Count(ctx, counterKey(s))
		if err != nil {
			return fmt.Errorf("bruteforce: failure count: %w", err)
		}
		wait = max(wait, f.delay(n))
	}
	if wait > 0 {
		if err := f.o.Wait(ctx, wait); err != nil {
			return fmt.Errorf("bruteforce: delay: %w", err)
		}
	}
	return nil
}

// Observe counts an authentication failure: a 401 decided in the authenticate phase
// (by an authenticator, or for a missing credential when CountMissing is set).
func (f *Filter) Observe(ctx context.Context, r *engine.Request, d *engine.Decision) {
	if d.Allow || d.Status != http.StatusUnauthorized || d.DecidedBy == "" {
		return
	}
	if d.Reason == "auth.missing" && !f.o.CountMissing {
		return
	}
	if f.allowlisted(r.Peer.IP) {
		return
	}
	for _, s := range f.subjects(r) {
		if err := f.fail(ctx, s); err != nil && f.o.OnError != nil {
			f.o.OnError(err)
		}
	}
}

// fail counts one failure of s and escalates.
func (f *Filter) fail(ctx context.Context, s subject) error {
	n, err := f.o.Counter.Incr(ctx, counterKey(s), f.o.Window)
	if err != nil {
		return fmt.Errorf("bruteforce: count failure: %w", err)
	}
	lvl := f.level(n)
	ev := Event{Kind: s.kind, Key: s.id, Level: lvl, Failures: n}
	if lvl >= LevelHigh {
		ban, err := f.banFor(ctx, s, lvl)
		if err != nil {
			return err
		}
		ev.Ban = ban
	}
	if f.o.OnLevel != nil && (lvl != f.level(n-1) || ev.Ban > 0) {
		f.o.OnLevel(ev)
	}
	return nil
}

// banFor bans s: the critical level gets MaxBan; the high level BanDuration doubled
// for each earlier ban within BanMemory, up to MaxBan.
func (f *Filter) banFor(ctx context.Context, s subject, lvl Level) (time.Duration, error) {
	bans, err := f.o.Counter.Incr(ctx, bansKey(s), f.o.BanMemory)
	if err != nil {
		return 0, fmt.Errorf("bruteforce: count bans: %w", err)
	}
	ban := f.o.MaxBan
	if lvl == LevelHigh {
		ban = doubled(f.o.BanDuration, bans-1, f.o.MaxBan)
	}
	if err := f.o.Bans.Ban(ctx, banKey(s), ban); err != nil {
		return 0, fmt.Errorf("bruteforce: ban: %w", err)
	}
	return ban, nil
}

// doubled returns d doubled times times, capped at limit (without overflowing).
func doubled(d time.Duration, times int64, limit time.Duration) time.Duration {
	for ; times > 0 && d < limit; times-- {
		d *= 2
	}
	return min(d, limit)
}
