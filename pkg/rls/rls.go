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
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
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
	// OnLimit is called for each descriptor found over its limit (metrics, logs).
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

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(g, s) }

// keyBuf is a pooled buffer for store keys.
type keyBuf struct{ b []byte }

var keyBufs = sync.Pool{New: func() any { return &keyBuf{b: make([]byte, 0, 256)} }}

// ShouldRateLimit decides one request.
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	if req.GetDomain() == "" {
		return nil, status.Error(codes.InvalidArgument, "rate limit domain must not be empty")
	}
	if len(req.GetDescriptors()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "rate limit descriptor list must not be empty")
	}
	tree := s.cfg.Load().domains[req.GetDomain()]
	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(req.Descriptors)),
	}
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	var hdr headerState
	for i, d := range req.Descriptors {
		st, err := s.decide(ctx, req, d, tree, kb, &hdr)
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		if st.Code == rlsv3.RateLimitResponse_OVER_LIMIT {
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		resp.Statuses[i] = st
	}
	if resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT || s.headersOnOK {
		resp.ResponseHeadersToAdd = hdr.headers(resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT)
	}
	return resp, nil
}

// decide evaluates one descriptor.
func (s *Server) decide(ctx context.Context, req *rlsv3.RateLimitRequest, d *ratelimitv3.RateLimitDescriptor,
	tree map[string]*node, kb *keyBuf, hdr *headerState) (*rlsv3.RateLimitResponse_DescriptorStatus, error) {
	l := match(tree, d.GetEntries())
	if o := d.GetLimit(); o != nil {
		l = overrideLimit(req.GetDomain(), o, l)
	}
	if l == nil || l.unlimited {
		return &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}, nil
	}
	kb.b = appendKey(kb.b[:0], l, d)
	res, err := s.limiters[l.policy].Take(ctx, unsafe.String(unsafe.SliceData(kb.b), len(kb.b)), cost(req, d), l.lim)
	over := false
	switch {
	case errors.Is(err, store.ErrUnavailable):
		over, res = true, store.Result{Limit: l.lim, RetryAfter: res.RetryAfter}
	case err != nil:
		return nil, fmt.Errorf("rate limit store: %w", err)
	default:
		over = !res.Allowed
	}
	st := &rlsv3.RateLimitResponse_DescriptorStatus{
		Code:               rlsv3.RateLimitResponse_OK,
		CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{Name: l.name, RequestsPerUnit: l.rpu, Unit: rlsv3.RateLimitResponse_RateLimit_Unit(l.unit)},
		LimitRemaining:     uint32(min(res.Remaining, uint64(^uint32(0)))),
		DurationUntilReset: durationpb.New(res.ResetAfter),
	}
	if over {
		if s.onLimit != nil {
			s.onLimit(req.GetDomain(), l.name, l.shadow)
		}
		if !l.shadow {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	if !l.shadow {
		hdr.add(l, res, over)
	}
	return st, nil
}

// match walks tree along entries: "key_value" first, then "key".
func match(tree map[string]*node, entries []*ratelimitv3.RateLimitDescriptor_Entry) *compiledLimit {
	var n *node
	level := tree
	for _, e := range entries {
		if level == nil {
			return nil
		}
		next := level[e.GetKey()+"_"+e.GetValue()]
		if next == nil {
			next = level[e.GetKey()]
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
func overrideLimit(domain string, o *ratelimitv3.RateLimitDescriptor_RateLimitOverride, base *compiledLimit) *compiledLimit {
	rl := RateLimit{Unit: o.GetUnit().String(), RequestsPerUnit: o.GetRequestsPerUnit()}
	shadow := false
	if base != nil {
		rl.Name, rl.OnStoreError, shadow = base.name, base.policy, base.shadow
	}
	unit := strconv.Itoa(int(o.GetUnit())) + "x" + strconv.FormatUint(uint64(o.GetRequestsPerUnit()), 10)
	l, err := compileLimit(&rl, shadow, domain, []string{"override", unit})
	if err != nil {
		return nil // an unusable override (unknown unit, zero) limits nothing, like no limit
	}
	l.scope += ".override." + unit
	return l
}

// cost is the descriptor's hits_addend, else the request's, else 1.
func cost(req *rlsv3.RateLimitRequest, d *ratelimitv3.RateLimitDescriptor) uint64 {
	if d.GetIsNegativeHits() {
		return 0
	}
	if h := d.GetHitsAddend(); h != nil {
		return h.GetValue()
	}
	if h := req.GetHitsAddend(); h > 0 {
		return uint64(h)
	}
	return 1
}

// appendKey appends scope ":" then each entry's key and value, length-prefixed
// (values over 64 bytes hashed), so distinct descriptors never share a key.
func appendKey(b []byte, l *compiledLimit, d *ratelimitv3.RateLimitDescriptor) []byte {
	b = append(b, l.scope...)
	b = append(b, ':')
	for _, e := range d.GetEntries() {
		b = appendField(b, e.GetKey())
		b = appendField(b, e.GetValue())
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

func (h *headerState) headers(over bool) []*corev3.HeaderValue {
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
	out := []*corev3.HeaderValue{
		{Key: "ratelimit-policy", Value: string(policy)},
		{Key: "ratelimit", Value: string(state)},
	}
	if over && retry > 0 {
		out = append(out, &corev3.HeaderValue{Key: "retry-after", Value: strconv.FormatInt(seconds(retry), 10)})
	}
	return out
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
