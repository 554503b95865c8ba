// Package rls is Portcullis's Envoy rate limit service
// (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit), configured like
// envoyproxy/ratelimit: domains with nested descriptors, each with a unit,
// requests_per_unit and shadow_mode. It decides with the same pkg/store limiter (GCRA)
// and stores as the ratelimit stage.
//
// Semantics:
//   - Each request descriptor walks its domain's tree entry by entry, trying "key_value"
//     then "key"; the RateLimit of the node its last entry lands on applies. A descriptor
//     that matches nothing, or whose node has no limit, is OK and has no current_limit.
//   - A descriptor's limit override (requests_per_unit, unit) replaces the configured
//     limit, counted under its own key.
//   - Cost: the descriptor's hits_addend when set (0 only reports), else the request's,
//     else 1. A negative-hits descriptor only reports (GCRA cannot refund).
//   - statuses has the same length and order as the descriptors, with current_limit,
//     limit_remaining and duration_until_reset (until the key is fully replenished).
//   - overall_code is OVER_LIMIT when any non-shadow descriptor is over. A shadow
//     descriptor is OK in its status and reported through OnLimit.
//   - A store failure under the deny policy makes that descriptor OVER_LIMIT; any
//     other store error fails the call with gRPC Unavailable, so Envoy's
//     failure_mode_deny decides.
//   - response_headers_to_add carries RateLimit-Policy and RateLimit (IETF draft, as in
//     the ratelimit stage) and, when over the limit, Retry-After; on OK only with
//     Options.HeadersOnOK.
//
// Why not engine.Decide: RLS has no route, credential or policy pipeline; its input is
// already-extracted descriptors, and its answer is one status per descriptor, which
// the engine's single Decision does not model. Going through Decide would add a route
// lookup and a pipeline only to carry descriptors to this same limiter.
package rls

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis/portcullis/pkg/store"
)

// Options configure a Server.
type Options struct {
	// Domains is the configuration.
	Domains []Domain
	// Limiter returns the store limiter applying a failure policy
	// (pkg/store.Guard.Limiter, or a Memory store for every policy). Required.
	Limiter func(store.Policy) store.Limiter
	// HeadersOnOK adds RateLimit-Policy and RateLimit to OK responses too.
	HeadersOnOK bool
	// OnLimit is called for each descriptor found over its limit (metrics, logs). The
	// domain string shares memory with the whole request: copy it (strings.Clone) to
	// keep it beyond the call.
	OnLimit func(domain, limit string, shadow bool)
}

// config is one compiled configuration.
type config struct {
	domains map[string]map[string]*node
}

// Server implements RateLimitService. It is safe for concurrent use; SetDomains swaps
// the configuration atomically.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer

	cfg         atomic.Pointer[config]
	calls       sync.Pool        // *callState
	answers     sync.Pool        // *pooledAnswer
	limiters    [3]store.Limiter // by store.Policy
	headersOnOK bool
	onLimit     func(domain, limit string, shadow bool)
}

var _ rlsv3.RateLimitServiceServer = (*Server)(nil)

// New compiles o.
func New(o Options) (*Server, error) {
	if o.Limiter == nil {
		return nil, errors.New("rls: no limiter")
	}
	s := &Server{headersOnOK: o.HeadersOnOK, onLimit: o.OnLimit}
	s.calls.New = func() any { return &callState{} }
	s.answers.New = func() any {
		p := &pooledAnswer{pool: &s.answers}
		p.RateLimitResponse = &p.a.resp // the block's own message, for the whole life of p
		return p
	}
	for p := range s.limiters {
		if s.limiters[p] = o.Limiter(store.Policy(p)); s.limiters[p] == nil {
			return nil, fmt.Errorf("rls: no limiter for policy %s", store.Policy(p))
		}
	}
	if err := s.SetDomains(o.Domains); err != nil {
		return nil, err
	}
	return s, nil
}

// SetDomains replaces the configuration; in-flight calls finish on the old one.
func (s *Server) SetDomains(domains []Domain) error {
	d, err := compile(domains)
	if err != nil {
		return err
	}
	s.cfg.Store(&config{domains: d})
	return nil
}

// keyBuf is a pooled buffer for store keys.
type keyBuf struct{ b []byte }

var keyBufs = sync.Pool{New: func() any { return &keyBuf{b: make([]byte, 0, 256)} }}

// ShouldRateLimit decides one request. The gRPC handler that Register installs gives
// the same answers without going through this method's messages (wire.go).
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	var r request
	r.fromProto(req)
	a := &answer{}
	if err := s.answer(ctx, &r, a); err != nil {
		return nil, err
	}
	return &a.resp, nil
}

// answer decides r into a.
func (s *Server) answer(ctx context.Context, r *request, a *answer) error {
	if r.domain == "" {
		return status.Error(codes.InvalidArgument, "rate limit domain must not be empty")
	}
	if r.overflow {
		return status.Errorf(codes.InvalidArgument, "a rate limit request may carry at most %d descriptors and %d entries", maxDescriptors, maxEntries)
	}
	if len(r.descs) == 0 {
		return status.Error(codes.InvalidArgument, "rate limit descriptor list must not be empty")
	}
	tree := s.cfg.Load().domains[r.domain]
	a.prepare(len(r.descs))
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	hdr := &a.hdr
	for i := range r.descs {
		if err := s.decide(ctx, r, &r.descs[i], tree, kb, hdr, a, i); err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		if a.statuses[i].Code == rlsv3.RateLimitResponse_OVER_LIMIT {
			a.resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	if over := a.resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT; over || s.headersOnOK {
		a.resp.ResponseHeadersToAdd = hdr.headers(over, a)
	}
	return nil
}

// decide evaluates descriptor d of r into a's status i.
func (s *Server) decide(ctx context.Context, r *request, d *descriptor, tree map[string]*node, kb *keyBuf,
	hdr *headerState, a *answer, i int) error {
	entries := r.entries[d.first:d.end]
	l := match(tree, entries)
	if d.hasOverride {
		l = overrideLimit(r.domain, d, l)
	}
	st := &a.statuses[i]
	st.Code = rlsv3.RateLimitResponse_OK
	if l == nil || l.unlimited {
		return nil
	}
	kb.b = appendKey(kb.b[:0], l, entries)
	res, err := s.limiters[l.policy].Take(ctx, unsafe.String(unsafe.SliceData(kb.b), len(kb.b)), cost(r, d), l.lim)
	over := false
	switch {
	case errors.Is(err, store.ErrUnavailable):
		over, res = true, store.Result{Limit: l.lim, RetryAfter: res.RetryAfter}
	case errors.Is(err, store.ErrInvalidLimit):
		// compileLimit refuses such limits; were one to get here, it limits nothing,
		// like an unusable override, rather than failing every descriptor of the call.
		return nil
	case err != nil:
		return fmt.Errorf("rate limit store: %w", err)
	default:
		over = !res.Allowed
	}
	a.limits[i] = rlsv3.RateLimitResponse_RateLimit{Name: l.name, RequestsPerUnit: l.rpu, Unit: rlsv3.RateLimitResponse_RateLimit_Unit(l.unit)}
	a.durs[i] = durationpb.Duration{Seconds: int64(res.ResetAfter / time.Second), Nanos: int32(res.ResetAfter % time.Second)}
	st.CurrentLimit = &a.limits[i]
	st.LimitRemaining = uint32(min(res.Remaining, uint64(^uint32(0))))
	st.DurationUntilReset = &a.durs[i]
	if over {
		if s.onLimit != nil {
			s.onLimit(r.domain, l.name, l.shadow)
		}
		if !l.shadow {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	if !l.shadow {
		hdr.add(l, res, over)
	}
	return nil
}

// match walks tree along entries: "key_value" first, then "key".
func match(tree map[string]*node, entries []entry) *compiledLimit {
	var n *node
	level := tree
	for _, e := range entries {
		if level == nil {
			return nil
		}
		next := level[e.key+"_"+e.value]
		if next == nil {
			next = level[e.key]
		}
		if next == nil {
			return nil
		}
		n, level = next, next.children
	}
	if n == nil {
		return nil
	}
	return n.limit
}

// overrideLimit builds the limit for a descriptor's override, keeping the matched
// limit's name and shadow mode when there is one.
func overrideLimit(domain string, d *descriptor, base *compiledLimit) *compiledLimit {
	rl := RateLimit{Unit: typev3.RateLimitUnit(d.unit).String(), RequestsPerUnit: d.rpu}
	shadow := false
	if base != nil {
		rl.Name, rl.OnStoreError, shadow = base.name, base.policy, base.shadow
	}
	unit := strconv.Itoa(int(d.unit)) + "x" + strconv.FormatUint(uint64(d.rpu), 10)
	l, err := compileLimit(&rl, shadow, domain, []string{"override", unit})
	if err != nil {
		return nil // an unusable override (unknown unit, zero) limits nothing, like no limit
	}
	l.scope += ".override." + unit
	return l
}

// cost is the descriptor's hits_addend, else the request's, else 1.
func cost(r *request, d *descriptor) uint64 {
	if d.negative {
		return 0
	}
	if d.hasHits {
		return d.hits
	}
	if r.hits > 0 {
		return uint64(r.hits)
	}
	return 1
}

// appendKey appends scope ":" then each entry's key and value, length-prefixed
// (values over 64 bytes hashed), so distinct descriptors never share a key.
func appendKey(b []byte, l *compiledLimit, entries []entry) []byte {
	b = append(b, l.scope...)
	b = append(b, ':')
	for _, e := range entries {
		b = appendField(b, e.key)
		b = appendField(b, e.value)
	}
	return b
}

func appendField(b []byte, s string) []byte {
	if len(s) <= 64 {
		return append(append(b, byte(len(s))), s...)
	}
	h := uint64(14695981039346656037) // FNV-1a: stable across replicas
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return append(b, 0xff, byte(h>>56), byte(h>>48), byte(h>>40), byte(h>>32), byte(h>>24), byte(h>>16), byte(h>>8), byte(h))
}

// headerState collects the RateLimit header items of one response. The header text is
// built only when the response carries it (a deny, or headers_on_ok), not for every
// allowed call.
type headerState struct {
	items []headerItem
	arr   [4]headerItem // backs items for up to four limited descriptors
}

type headerItem struct {
	l         *compiledLimit
	remaining uint64
	reset     time.Duration
	retry     time.Duration // 0 unless over
}

func (h *headerState) add(l *compiledLimit, res store.Result, over bool) {
	if h.items == nil {
		h.items = h.arr[:0]
	}
	it := headerItem{l: l, remaining: res.Remaining, reset: res.ResetAfter}
	if over {
		it.retry = max(res.RetryAfter, time.Second)
	}
	h.items = append(h.items, it)
}

// headers returns the answer's headers, held in a.
func (h *headerState) headers(over bool, a *answer) []*corev3.HeaderValue {
	if len(h.items) == 0 {
		return nil
	}
	var policy, state []byte
	var retry time.Duration
	for i, it := range h.items {
		if i > 0 {
			policy = append(policy, ", "...)
			state = append(state, ", "...)
		}
		policy = append(policy, it.l.policyHdr...)
		state = strconv.AppendQuote(state, headerName(it.l.name))
		state = append(state, ";r="...)
		state = strconv.AppendUint(state, it.remaining, 10)
		state = append(state, ";t="...)
		state = strconv.AppendInt(state, seconds(it.reset), 10)
		retry = max(retry, it.retry)
	}
	a.hdrs[0] = corev3.HeaderValue{Key: "ratelimit-policy", Value: string(policy)}
	a.hdrs[1] = corev3.HeaderValue{Key: "ratelimit", Value: string(state)}
	n := 2
	if over && retry > 0 {
		a.hdrs[2] = corev3.HeaderValue{Key: "retry-after", Value: strconv.FormatInt(seconds(retry), 10)}
		n = 3
	}
	for i := range n {
		a.hdrPtrs[i] = &a.hdrs[i]
	}
	return a.hdrPtrs[:n]
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
