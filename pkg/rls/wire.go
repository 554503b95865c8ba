package rls

import (
	"context"
	"errors"
	"slices"
	"sync"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Field numbers read from the wire (rls.proto and ratelimit.proto); TestFieldNumbers
// checks them against the generated descriptors.
const (
	fRequestDomain      protowire.Number = 1 // RateLimitRequest.domain
	fRequestDescriptors protowire.Number = 2 // RateLimitRequest.descriptors
	fRequestHitsAddend  protowire.Number = 3 // RateLimitRequest.hits_addend
	fDescEntries        protowire.Number = 1 // RateLimitDescriptor.entries
	fDescLimit          protowire.Number = 2 // RateLimitDescriptor.limit
	fDescHitsAddend     protowire.Number = 3 // RateLimitDescriptor.hits_addend (UInt64Value)
	fDescNegativeHits   protowire.Number = 4 // RateLimitDescriptor.is_negative_hits
	fEntryKey           protowire.Number = 1 // Entry.key
	fEntryValue         protowire.Number = 2 // Entry.value
	fOverrideRPU        protowire.Number = 1 // RateLimitOverride.requests_per_unit
	fOverrideUnit       protowire.Number = 2 // RateLimitOverride.unit
	fWrapperValue       protowire.Number = 1 // UInt64Value.value
)

var (
	errWireMalformed = errors.New("rls: malformed RateLimitRequest")
	errWireUTF8      = errors.New("rls: RateLimitRequest string field is not valid UTF-8")
)

// request is what a decision reads of a RateLimitRequest, decoded from the wire
// (decodeRequest) or copied from a message (fromProto). Its slices are reused from
// call to call.
type request struct {
	domain  string
	hits    uint32
	descs   []descriptor
	entries []entry // every descriptor's entries, in order
	// overflow: the request has more than maxDescriptors descriptors or maxEntries
	// entries; only that many were kept, and the call is refused.
	overflow bool
}

// maxDescriptors and maxEntries bound what one call may ask: far above what Envoy's
// rate limit actions produce for a request (a descriptor per action list, an entry
// per action), and small enough that a request of empty descriptors cannot make a
// call allocate more than its own size (without them, 2,000,000 two-byte descriptors
// in a 4 MB request made one call allocate 918 MB).
const (
	maxDescriptors = 128
	maxEntries     = 1024
)

// descriptor is one RateLimitDescriptor; its entries are request.entries[first:end].
type descriptor struct {
	first, end  int
	hasOverride bool
	rpu         uint32 // the override's requests_per_unit
	unit        int32  // the override's unit (envoy.type.v3.RateLimitUnit)
	hasHits     bool   // hits_addend is set (even to 0)
	hits        uint64
	negative    bool
}

type entry struct{ key, value string }

func (r *request) reset() {
	r.domain, r.hits, r.overflow = "", 0, false
	r.descs = r.descs[:0]
	clear(r.entries) // drop the strings, so a pooled request keeps no call's bytes alive
	r.entries = r.entries[:0]
}

// fromProto fills r from m.
func (r *request) fromProto(m *rlsv3.RateLimitRequest) {
	r.reset()
	r.domain, r.hits = m.GetDomain(), m.GetHitsAddend()
	for _, d := range m.GetDescriptors() {
		if len(r.descs) == maxDescriptors || len(r.entries)+len(d.GetEntries()) > maxEntries {
			r.overflow = true
			return
		}
		v := descriptor{first: len(r.entries), negative: d.GetIsNegativeHits()}
		for _, e := range d.GetEntries() {
			r.entries = append(r.entries, entry{key: e.GetKey(), value: e.GetValue()})
		}
		v.end = len(r.entries)
		if o := d.GetLimit(); o != nil {
			v.hasOverride, v.rpu, v.unit = true, o.GetRequestsPerUnit(), int32(o.GetUnit())
		}
		if h := d.GetHitsAddend(); h != nil {
			v.hasHits, v.hits = true, h.GetValue()
		}
		r.descs = append(r.descs, v)
	}
}

// decodeRequest fills r from the wire bytes b of a RateLimitRequest; s holds the same
// bytes as a string, and every string of r is a slice of it. It reads what
// protobuf-go's proto.Unmarshal would (last value wins for scalars, repeated embedded
// messages merge, unknown fields and fields of an unexpected wire type are skipped,
// strings must be UTF-8) and refuses what it would refuse (FuzzDecodeRequest). Past
// maxDescriptors or maxEntries it keeps checking the bytes but keeps nothing more, and
// sets r.overflow.
func decodeRequest(r *request, b []byte, s string) error {
	r.reset()
	w := wire{b: b, s: s}
	return w.walk(0, len(b), func(f field) error {
		switch {
		case f.is(fRequestDomain, protowire.BytesType):
			return w.text(f, &r.domain)
		case f.is(fRequestDescriptors, protowire.BytesType):
			return w.descriptor(r, f)
		case f.is(fRequestHitsAddend, protowire.VarintType):
			r.hits = uint32(f.v)
		}
		return nil
	})
}

// wire is one message's bytes, and the same bytes as a string for slicing strings.
type wire struct {
	b []byte
	s string
}

// field is one field of a message: its number and wire type, its value for a varint,
// and for a bytes field the bounds [start, end) of its payload.
type field struct {
	num        protowire.Number
	typ        protowire.Type
	v          uint64
	start, end int
}

func (f field) is(num protowire.Number, typ protowire.Type) bool { return f.num == num && f.typ == typ }

// descriptor appends the RateLimitDescriptor in f to r (only checks it, once r is
// full).
func (w wire) descriptor(r *request, f field) error {
	if len(r.descs) == maxDescriptors {
		r.overflow = true
	}
	d := descriptor{first: len(r.entries)}
	err := w.walk(f.start, f.end, func(f field) error {
		switch {
		case f.is(fDescEntries, protowire.BytesType):
			var e entry
			err := w.walk(f.start, f.end, func(f field) error {
				switch {
				case f.is(fEntryKey, protowire.BytesType):
					return w.text(f, &e.key)
				case f.is(fEntryValue, protowire.BytesType):
					return w.text(f, &e.value)
				}
				return nil
			})
			if len(r.entries) == maxEntries {
				r.overflow = true
			}
			if !r.overflow {
				r.entries = append(r.entries, e)
			}
			return err
		case f.is(fDescLimit, protowire.BytesType):
			d.hasOverride = true
			return w.walk(f.start, f.end, func(f field) error {
				switch {
				case f.is(fOverrideRPU, protowire.VarintType):
					d.rpu = uint32(f.v)
				case f.is(fOverrideUnit, protowire.VarintType):
					d.unit = int32(f.v)
				}
				return nil
			})
		case f.is(fDescHitsAddend, protowire.BytesType):
			d.hasHits = true
			return w.walk(f.start, f.end, func(f field) error {
				if f.is(fWrapperValue, protowire.VarintType) {
					d.hits = f.v
				}
				return nil
			})
		case f.is(fDescNegativeHits, protowire.VarintType):
			d.negative = f.v != 0
		}
		return nil
	})
	d.end = len(r.entries)
	if !r.overflow {
		r.descs = append(r.descs, d)
	}
	return err
}

// walk calls fn for each field of the message in b[start:end]. Groups and
// fixed-width fields are checked and skipped.
func (w wire) walk(start, end int, fn func(field) error) error {
	b := w.b
	for i := start; i < end; {
		num, typ, n := protowire.ConsumeTag(b[i:end])
		if n < 0 || num > protowire.MaxValidNumber {
			return errWireMalformed
		}
		i += n
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b[i:end])
		case protowire.BytesType:
			var payload []byte
			payload, n = protowire.ConsumeBytes(b[i:end])
			f.end = i + n
			f.start = f.end - len(payload)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[i:end])
		}
		if n < 0 {
			return errWireMalformed
		}
		i += n
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// text sets *dst to the payload of bytes field f, which must be UTF-8 (proto3 strings
// are).
func (w wire) text(f field, dst *string) error {
	t := w.s[f.start:f.end]
	if !utf8.ValidString(t) {
		return errWireUTF8
	}
	*dst = t
	return nil
}

// callState is one ShouldRateLimit call's reusable state.
type callState struct {
	req  request
	wire []byte // the message's bytes, reused
	in   wireRequest
	msg  rlsv3.RateLimitRequest // decoded into by a codec other than Portcullis's
}

// wireRequest is the request message of the handler Register installs. Portcullis's
// gRPC codec (pkg/extauthz's, which the gRPC listener uses) calls UnmarshalWire, which
// decodes straight into the call's request. Any other codec sees the embedded
// RateLimitRequest, a proto message, and decodes into it; the handler then copies it.
type wireRequest struct {
	*rlsv3.RateLimitRequest
	st      *callState
	decoded bool
}

// UnmarshalWire copies data into the call's reusable buffer (gRPC reuses data's
// buffers after the codec returns) and decodes it. Strings are slices of one string
// copy of the message, so they stay valid while the call runs, and nothing of the call
// is retained after it.
func (w *wireRequest) UnmarshalWire(data mem.BufferSlice) error {
	st := w.st
	st.wire = slices.Grow(st.wire[:0], data.Len())[:data.Len()]
	data.CopyTo(st.wire)
	if err := decodeRequest(&st.req, st.wire, string(st.wire)); err != nil {
		return err
	}
	w.decoded = true
	return nil
}

// maxPooledDescriptors and maxPooledEntries bound what a pooled call state or answer
// keeps.
const (
	maxPooledDescriptors = 64
	maxPooledEntries     = 8 * maxPooledDescriptors
)

// answer is a RateLimitResponse and everything it points to, reused across calls.
type answer struct {
	resp     rlsv3.RateLimitResponse
	ptrs     []*rlsv3.RateLimitResponse_DescriptorStatus
	statuses []rlsv3.RateLimitResponse_DescriptorStatus
	limits   []rlsv3.RateLimitResponse_RateLimit
	durs     []durationpb.Duration
	hdr      headerState // the RateLimit header items, before they become hdrs
	hdrs     [3]corev3.HeaderValue
	hdrPtrs  [3]*corev3.HeaderValue
}

// prepare resets a for an answer of n statuses.
func (a *answer) prepare(n int) {
	if cap(a.statuses) < n {
		a.ptrs = make([]*rlsv3.RateLimitResponse_DescriptorStatus, n)
		a.statuses = make([]rlsv3.RateLimitResponse_DescriptorStatus, n)
		a.limits = make([]rlsv3.RateLimitResponse_RateLimit, n)
		a.durs = make([]durationpb.Duration, n)
	}
	a.ptrs, a.statuses, a.limits, a.durs = a.ptrs[:n], a.statuses[:n], a.limits[:n], a.durs[:n]
	a.resp = rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: a.ptrs}
	clear(a.hdr.items)
	a.hdr.items = a.hdr.items[:0]
	for i := range a.ptrs {
		a.statuses[i] = rlsv3.RateLimitResponse_DescriptorStatus{}
		a.ptrs[i] = &a.statuses[i]
	}
}

// pooledAnswer is an answer the codec marshals (its embedded RateLimitResponse) and
// then hands back with ReleaseAfterMarshal: once the pool is warm, an answer allocates
// nothing. With another codec it is marshalled the same way and never reused.
//
// Nothing may read the reply after the codec marshalled it. grpc-go (1.85) still hands
// it to stats handlers (OutPayload.Payload) and, with grpc.EnableTracing, to the trace
// log, both after the marshal: a server with either must not use Portcullis's codec
// (see pkg/extauthz.ServerOptions). Portcullis installs neither; the binary log reads
// the marshalled bytes, not the message.
type pooledAnswer struct {
	*rlsv3.RateLimitResponse
	a    answer
	pool *sync.Pool
}

// ReleaseAfterMarshal returns p to its pool; the codec calls it once the answer is on
// the wire's buffer. The header strings are dropped so that a pooled answer keeps none
// alive.
func (p *pooledAnswer) ReleaseAfterMarshal() {
	if cap(p.a.statuses) > maxPooledDescriptors {
		return
	}
	p.a.resp.ResponseHeadersToAdd = nil
	clear(p.a.hdrs[:])
	p.pool.Put(p)
}

// Register registers s as the RateLimitService of g. Its ShouldRateLimit handler
// decodes the request from the wire into pooled per-call state and answers from a
// pooled block when g uses Portcullis's codec (pkg/extauthz.ServerOptions); on a
// server with the standard codec it decodes and answers through the generated
// messages. Either way the answer is ShouldRateLimit's.
//
// Unary interceptors see a *wireRequest: with Portcullis's codec its embedded
// RateLimitRequest is empty (the request was decoded into the call's state instead),
// the handler decides on what it decoded whatever request an interceptor passes on,
// and the call's state is reused once the handler returns, so an interceptor must not
// run the handler on another goroutine and return before it. Portcullis installs no
// interceptors.
func (s *Server) Register(g *grpc.Server) { g.RegisterService(&rateLimitService, s) }

// rateLimitService is envoy.service.ratelimit.v3.RateLimitService with
// shouldRateLimitHandler; its names are the generated descriptor's.
var rateLimitService = grpc.ServiceDesc{
	ServiceName: "envoy.service.ratelimit.v3.RateLimitService",
	HandlerType: (*rlsv3.RateLimitServiceServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "ShouldRateLimit", Handler: shouldRateLimitHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "envoy/service/ratelimit/v3/rls.proto",
}

func shouldRateLimitHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	st := s.calls.Get().(*callState)
	defer s.releaseCall(st)
	w := &st.in
	*w = wireRequest{RateLimitRequest: &st.msg, st: st}
	if err := dec(w); err != nil {
		return nil, err
	}
	if !w.decoded {
		st.req.fromProto(&st.msg)
	}
	if interceptor == nil {
		return s.answerPooled(ctx, &st.req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: rlsv3.RateLimitService_ShouldRateLimit_FullMethodName}
	return interceptor(ctx, w, info, func(ctx context.Context, _ any) (any, error) { return s.answerPooled(ctx, &st.req) })
}

func (s *Server) answerPooled(ctx context.Context, r *request) (any, error) {
	p := s.answers.Get().(*pooledAnswer)
	if err := s.answer(ctx, r, &p.a); err != nil {
		p.ReleaseAfterMarshal()
		return nil, err
	}
	return p, nil
}

// releaseCall returns st to its pool, unless an unusual request grew it: a pooled state
// keeps at most maxPooledDescriptors descriptors, maxPooledEntries entries and 64 KiB of
// message.
func (s *Server) releaseCall(st *callState) {
	if cap(st.req.descs) > maxPooledDescriptors || cap(st.req.entries) > maxPooledEntries || cap(st.wire) > 64<<10 {
		return
	}
	st.req.reset()
	if !st.in.decoded {
		st.msg.Reset() // drop what another codec decoded into it
	}
	s.calls.Put(st)
}
