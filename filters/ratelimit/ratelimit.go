// Package ratelimit is the ratelimit stage: one or more rate limits, each keyed by a
// combination of request attributes, checked in the inspect phase (keys from the
// request only) or the limit phase (keys may use the identity).
//
// Every limit of a stage applies: each is charged independently (a limit that admits
// the request consumes a unit even when another limit refuses it, as Envoy's rate limit
// service does), and the request is denied with 429 when any enforced limit refuses.
// A limit in shadow mode is charged and reported (engine.Decision.Limits,
// engine.Decision.Shadowed) but never denies.
//
// The algorithm and its error bound are pkg/store's (GCRA): over any interval W a key
// admits at most Burst + W·Rate/Period requests.
//
// Denials carry Retry-After (whole seconds, at least 1) and the IETF
// draft-ietf-httpapi-ratelimit-headers fields in their structured-field form:
//
//	RateLimit-Policy: "per-ip";q=100;w=60, "per-user";q=1000;w=3600
//	RateLimit: "per-ip";r=0;t=12, "per-user";r=740;t=900
//
// where q is the quota (Rate), w the window (Period) in seconds, r the remaining units
// and t the seconds until the key is fully replenished. With Options.HeadersOnAllow
// the same fields go on allowed responses too.
//
// Keys are built in a pooled buffer without allocating; header values and paths are
// hashed and other values longer than 64 bytes too, so a key's size is bounded, and the
// store bounds the number of keys.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
)

// Reason codes of the denials this package returns.
const (
	ReasonOver        = "ratelimit.over"        // 429: a limit refused the request
	ReasonUnavailable = "ratelimit.unavailable" // 503: the store failed and on_store_error is deny
)

// Options configure a Filter.
type Options struct {
	// Stage is the stage's name, used in engine.Decision.Shadowed entries; "" means
	// "ratelimit".
	Stage string
	// Limits are the limits; all apply. At least one is required.
	Limits []LimitOptions
	// HeadersOnAllow adds RateLimit-Policy and RateLimit to allowed responses too.
	HeadersOnAllow bool
}

// LimitOptions configure one limit.
type LimitOptions struct {
	// Name identifies the limit in headers, logs and store keys: 1 to 64 characters
	// from [A-Za-z0-9_.-]. Limits with the same name share counters, so names must be
	// unique across the configuration unless sharing is intended.
	Name string
	// Key lists the attributes the limit is counted by; empty means one bucket for
	// every request. KeySubject and KeyAPIKey need the limit phase.
	Key []KeyPart
	// Header is the header name for KeyHeader.
	Header string
	// Rate units per Period (see ParseRate); Burst is the largest burst, 0 meaning Rate.
	Rate   uint64
	Period time.Duration
	Burst  uint64
	// Shadow counts and reports the limit without denying.
	Shadow bool
	// Limiter is the store; pkg/store.Guard.Limiter(policy) applies on_store_error.
	Limiter store.Limiter
}

// limit is one compiled limit.
type limit struct {
	name     string
	parts    []KeyPart
	header   string // canonical
	lim      store.Limit
	shadow   bool
	limiter  store.Limiter
	shadowed string // precomputed Decision.Shadowed entry
}

// Filter is a compiled ratelimit stage. It is immutable and safe for concurrent use.
type Filter struct {
	limits         []limit
	policy         string // precomputed RateLimit-Policy value (enforced limits)
	headersOnAllow bool
	needsIdentity  bool
}

var _ engine.Filter = (*Filter)(nil)

// New compiles o.
func New(o Options) (*Filter, error) {
	if len(o.Limits) == 0 {
		return nil, errors.New("ratelimit: no limits")
	}
	if o.Stage == "" {
		o.Stage = "ratelimit"
	}
	f := &Filter{headersOnAllow: o.HeadersOnAllow}
	var policy []string
	for _, lo := range o.Limits {
		l, err := compileLimit(lo, o.Stage)
		if err != nil {
			return nil, err
		}
		for _, p := range l.parts {
			f.needsIdentity = f.needsIdentity || p.needsIdentity()
		}
		if !l.shadow {
			policy = append(policy, fmt.Sprintf("%q;q=%d;w=%d", l.name, l.lim.Rate, seconds(l.lim.Period)))
		}
		f.limits = append(f.limits, l)
	}
	f.policy = strings.Join(policy, ", ")
	return f, nil
}

func compileLimit(lo LimitOptions, stage string) (limit, error) {
	if !validName(lo.Name) {
		return limit{}, fmt.Errorf("ratelimit: limit name %q: want 1-64 characters from [A-Za-z0-9_.-]", lo.Name)
	}
	l := limit{
		name:     lo.Name,
		parts:    lo.Key,
		lim:      store.Limit{Rate: lo.Rate, Period: lo.Period, Burst: lo.Burst},
		shadow:   lo.Shadow,
		limiter:  lo.Limiter,
		shadowed: stage + ":" + ReasonOver + ":" + lo.Name,
	}
	switch {
	case !l.lim.Valid():
		return l, fmt.Errorf("ratelimit: limit %s: invalid rate %d per %v, burst %d", lo.Name, lo.Rate, lo.Period, lo.Burst)
	case lo.Limiter == nil:
		return l, fmt.Errorf("ratelimit: limit %s: no store", lo.Name)
	}
	for _, p := range lo.Key {
		if p < KeyIP || p > KeyPath {
			return l, fmt.Errorf("ratelimit: limit %s: invalid key part %d", lo.Name, p)
		}
		if p == KeyHeader {
			if lo.Header == "" {
				return l, fmt.Errorf("ratelimit: limit %s: key part header needs a header name", lo.Name)
			}
			l.header = http.CanonicalHeaderKey(lo.Header)
		}
	}
	return l, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// NeedsIdentity reports whether a limit is keyed by the identity, so the stage must
// run in the limit phase.
func (f *Filter) NeedsIdentity() bool { return f.needsIdentity }

// Check charges every limit and denies with 429 when an enforced limit refuses. A
// store failure under the deny policy denies with 503; any other store error is a
// technical failure (the stage's on_error applies).
func (f *Filter) Check(ctx context.Context, r *engine.Request, d *engine.Decision) error {
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	if d.Limits == nil {
		d.Limits = make([]engine.LimitStatus, 0, len(f.limits))
	}
	first := len(d.Limits)
	over := -1
	var retry time.Duration
	for i := range f.limits {
		l := &f.limits[i]
		kb.b = l.appendKey(kb.b[:0], r, d)
		// The store does not retain the key (pkg/store's contract), so the buffer can
		// be viewed as a string without copying.
		res, err := l.limiter.Take(ctx, unsafe.String(unsafe.SliceData(kb.b), len(kb.b)), 1, l.lim)
		if err != nil {
			if l.shadow {
				continue
			}
			if errors.Is(err, store.ErrUnavailable) {
				return engine.Deny(http.StatusServiceUnavailable, ReasonUnavailable, "rate limit unavailable")
			}
			return fmt.Errorf("ratelimit %s: %w", l.name, err)
		}
		d.Limits = append(d.Limits, status(l, res))
		switch {
		case res.Allowed:
		case l.shadow:
			d.Shadowed = append(d.Shadowed, l.shadowed)
		default:
			if over < 0 {
				over = i
			}
			retry = max(retry, res.RetryAfter)
		}
	}
	if over >= 0 {
		den := engine.Deny(http.StatusTooManyRequests, ReasonOver, "rate limit exceeded")
		den.Header = make(http.Header, 3)
		den.Header.Set("Retry-After", strconv.FormatInt(max(1, seconds(retry)), 10))
		f.setHeaders(den.Header, d.Limits[first:])
		return den
	}
	if f.headersOnAllow && f.policy != "" {
		if d.Response == nil {
			d.Response = make(http.Header, 2)
		}
		f.setHeaders(d.Response, d.Limits[first:])
	}
	return nil
}

func status(l *limit, res store.Result) engine.LimitStatus {
	return engine.LimitStatus{
		Name:      l.name,
		Over:      !res.Allowed,
		Limit:     res.Limit.Rate,
		Window:    res.Limit.Period,
		Remaining: res.Remaining,
		Reset:     res.ResetAfter,
		Shadow:    l.shadow,
	}
}

// setHeaders sets RateLimit-Policy and RateLimit for the enforced limits in st.
func (f *Filter) setHeaders(h http.Header, st []engine.LimitStatus) {
	if f.policy == "" {
		return
	}
	b := make([]byte, 0, 32*len(st))
	for _, s := range st {
		if s.Shadow {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, s.Name)
		b = append(b, ";r="...)
		b = strconv.AppendUint(b, s.Remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, seconds(s.Reset), 10)
	}
	addListField(h, "Ratelimit-Policy", f.policy)
	addListField(h, "Ratelimit", string(b))
}

// addListField adds items to a structured-field list header, after the items an
// earlier ratelimit stage put there (two stages, e.g. per IP and per user, each
// report their limits).
func addListField(h http.Header, name, items string) {
	if items == "" {
		return
	}
	if old := h[name]; len(old) > 0 && old[0] != "" {
		items = old[0] + ", " + items
	}
	h[name] = []string{items}
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
