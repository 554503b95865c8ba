package rls

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis/portcullis/pkg/extauthz"
	"github.com/portcullis/portcullis/pkg/store"
)

func TestFieldNumbers(t *testing.T) {
	req := (&rlsv3.RateLimitRequest{}).ProtoReflect().Descriptor().Fields()
	d := (&ratelimitv3.RateLimitDescriptor{}).ProtoReflect().Descriptor().Fields()
	e := (&ratelimitv3.RateLimitDescriptor_Entry{}).ProtoReflect().Descriptor().Fields()
	o := (&ratelimitv3.RateLimitDescriptor_RateLimitOverride{}).ProtoReflect().Descriptor().Fields()
	w := (&wrapperspb.UInt64Value{}).ProtoReflect().Descriptor().Fields()
	for _, c := range []struct {
		name string
		got  protoreflect.FieldNumber
		want protowire.Number
	}{
		{"RateLimitRequest.domain", req.ByName("domain").Number(), fRequestDomain},
		{"RateLimitRequest.descriptors", req.ByName("descriptors").Number(), fRequestDescriptors},
		{"RateLimitRequest.hits_addend", req.ByName("hits_addend").Number(), fRequestHitsAddend},
		{"RateLimitDescriptor.entries", d.ByName("entries").Number(), fDescEntries},
		{"RateLimitDescriptor.limit", d.ByName("limit").Number(), fDescLimit},
		{"RateLimitDescriptor.hits_addend", d.ByName("hits_addend").Number(), fDescHitsAddend},
		{"RateLimitDescriptor.is_negative_hits", d.ByName("is_negative_hits").Number(), fDescNegativeHits},
		{"Entry.key", e.ByName("key").Number(), fEntryKey},
		{"Entry.value", e.ByName("value").Number(), fEntryValue},
		{"RateLimitOverride.requests_per_unit", o.ByName("requests_per_unit").Number(), fOverrideRPU},
		{"RateLimitOverride.unit", o.ByName("unit").Number(), fOverrideUnit},
		{"UInt64Value.value", w.ByName("value").Number(), fWrapperValue},
	} {
		if c.got != c.want {
			t.Errorf("%s is field %d in the proto, the decoder reads %d", c.name, c.got, c.want)
		}
	}
}

// viaProto is what the handler reads of b when protobuf-go decodes it.
func viaProto(b []byte) (request, error) {
	var m rlsv3.RateLimitRequest
	var r request
	if err := proto.Unmarshal(b, &m); err != nil {
		return r, err
	}
	r.fromProto(&m)
	return r, nil
}

// viaWire is what the handler reads of b when it decodes the wire itself.
func viaWire(b []byte) (request, error) {
	var r request
	err := decodeRequest(&r, b, string(b))
	return r, err
}

// sameRequest compares two decodings, treating nil and empty slices alike. A request
// over the descriptor or entry bound is refused whatever it holds: both decodings
// must say so.
func sameRequest(a, b request) bool {
	if a.overflow || b.overflow {
		return a.overflow == b.overflow
	}
	return a.domain == b.domain && a.hits == b.hits && len(a.descs) == len(b.descs) && len(a.entries) == len(b.entries) &&
		(len(a.descs) == 0 || reflect.DeepEqual(a.descs, b.descs)) &&
		(len(a.entries) == 0 || reflect.DeepEqual(a.entries, b.entries))
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireCases are requests as Envoy sends them and shaped ones: repeated fields,
// unknown fields, fields of an unexpected wire type, and malformed bytes.
func wireCases(t testing.TB) map[string][]byte {
	full := &rlsv3.RateLimitRequest{Domain: "edge", HitsAddend: 3, Descriptors: []*ratelimitv3.RateLimitDescriptor{
		desc("remote_address", "10.0.0.1"),
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "path", Value: "/login"}, {Key: "user", Value: "ålice"}},
			Limit:      &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 7, Unit: typev3.RateLimitUnit_HOUR},
			HitsAddend: wrapperspb.UInt64(0)},
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "k"}}, IsNegativeHits: true, HitsAddend: wrapperspb.UInt64(1 << 40)},
		{},
	}}
	fullWire := marshal(t, full)
	var (
		tag   = protowire.AppendTag
		bytes = protowire.AppendBytes
		str   = protowire.AppendString
		vint  = protowire.AppendVarint
	)
	entry := func(k, v string) []byte {
		return str(tag(str(tag(nil, fEntryKey, protowire.BytesType), k), fEntryValue, protowire.BytesType), v)
	}
	// A descriptor whose limit and hits_addend each come twice: protobuf-go merges them.
	var merged []byte
	merged = bytes(tag(merged, fDescEntries, protowire.BytesType), entry("a", "b"))
	merged = bytes(tag(merged, fDescLimit, protowire.BytesType), vint(tag(nil, fOverrideRPU, protowire.VarintType), 5))
	merged = bytes(tag(merged, fDescLimit, protowire.BytesType), vint(tag(nil, fOverrideUnit, protowire.VarintType), 2))
	merged = bytes(tag(merged, fDescHitsAddend, protowire.BytesType), vint(tag(nil, fWrapperValue, protowire.VarintType), 9))
	merged = bytes(tag(merged, fDescHitsAddend, protowire.BytesType), nil)
	merged = vint(tag(merged, 99, protowire.VarintType), 1) // unknown
	var odd []byte
	odd = str(tag(odd, fRequestDomain, protowire.BytesType), "first")
	odd = str(tag(odd, fRequestDomain, protowire.BytesType), "second") // last wins
	odd = vint(tag(odd, fRequestDomain, protowire.VarintType), 7)      // wrong wire type: unknown
	odd = vint(tag(odd, fRequestHitsAddend, protowire.VarintType), 1<<33+4)
	odd = protowire.AppendFixed32(tag(odd, 50, protowire.Fixed32Type), 1)
	odd = protowire.AppendFixed64(tag(odd, 51, protowire.Fixed64Type), 1)
	odd = tag(tag(odd, 52, protowire.StartGroupType), 52, protowire.EndGroupType)
	odd = bytes(tag(odd, fRequestDescriptors, protowire.BytesType), merged)
	badUTF8 := str(tag(nil, fRequestDomain, protowire.BytesType), "\xff")
	badEntry := bytes(tag(nil, fRequestDescriptors, protowire.BytesType), bytes(tag(nil, fDescEntries, protowire.BytesType), entry("k", "\xc3")))
	return map[string][]byte{
		"full":               fullWire,
		"empty":              nil,
		"merged and unknown": odd,
		"bad utf-8 domain":   badUTF8,
		"bad utf-8 value":    badEntry,
		"truncated":          fullWire[:len(fullWire)-3],
		"bad length":         append(tag(nil, fRequestDescriptors, protowire.BytesType), 0x7f, 1),
		"bad tag":            {0x80},
		"field zero":         vint(tag(nil, 0, protowire.VarintType), 1),
		"unmatched group":    tag(nil, 52, protowire.StartGroupType),
		"nested truncation":  bytes(tag(nil, fRequestDescriptors, protowire.BytesType), []byte{0x0a, 0x05, 0x0a}),
	}
}

// TestDecodeRequest checks the wire decoder against protobuf-go: the same fields where
// it accepts, an error where it refuses.
func TestDecodeRequest(t *testing.T) {
	for name, b := range wireCases(t) {
		want, werr := viaProto(b)
		got, gerr := viaWire(b)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: protobuf-go error %v, wire decoder error %v", name, werr, gerr)
			continue
		}
		if werr == nil && !sameRequest(got, want) {
			t.Errorf("%s:\nwire  %+v\nproto %+v", name, got, want)
		}
	}
	// The shaped case reads what it was built to read (protobuf-go agreeing is not
	// enough if both were wrong).
	got, err := viaWire(wireCases(t)["merged and unknown"])
	if err != nil {
		t.Fatal(err)
	}
	want := descriptor{first: 0, end: 1, hasOverride: true, rpu: 5, unit: 2, hasHits: true, hits: 9}
	if got.domain != "second" || got.hits != 4 || len(got.descs) != 1 || got.descs[0] != want || got.entries[0] != (entry{"a", "b"}) {
		t.Fatalf("merged request: %+v", got)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, b := range wireCases(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := viaProto(b)
		got, gerr := viaWire(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("protobuf-go error %v, wire decoder error %v", werr, gerr)
		}
		if werr == nil && !sameRequest(got, want) {
			t.Fatalf("wire  %+v\nproto %+v", got, want)
		}
	})
}

// TestPooledAnswersAreReset reuses one answer block for requests of different shapes
// (statuses with and without limits, over the limit with headers, fewer descriptors
// than before) and compares each answer with a fresh one from a second server fed the
// same requests: nothing of an earlier answer may show in a later one.
func TestPooledAnswersAreReset(t *testing.T) {
	// Both servers read one frozen clock: on their own coarse clocks, a tick between
	// the two calls of an iteration made their durations differ.
	now := time.Unix(1_900_000_000, 0)
	frozen := func() Options {
		m := store.NewMemory(store.MemoryOptions{Clock: func() time.Time { return now }})
		return Options{Domains: testDomains, Limiter: func(store.Policy) store.Limiter { return m }}
	}
	fresh, err := New(frozen())
	if err != nil {
		t.Fatal(err)
	}
	reused, err := New(frozen())
	if err != nil {
		t.Fatal(err)
	}
	over := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{
		desc("remote_address", "10.9.9.9"), desc("path", "/login", "user", "eve"), desc("unknown", "x")}}
	plain := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("internal", "x")}}
	nowhere := &rlsv3.RateLimitRequest{Domain: "nowhere", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("a", "b"), desc("c", "d")}}
	var a answer
	var r request
	ctx := context.Background()
	for i, req := range []*rlsv3.RateLimitRequest{over, over, over, plain, over, nowhere, plain, over} {
		want, err := fresh.ShouldRateLimit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		b := marshal(t, req)
		if err := decodeRequest(&r, b, string(b)); err != nil {
			t.Fatal(err)
		}
		if err := reused.answer(ctx, &r, &a); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&a.resp, want) {
			t.Fatalf("call %d, reused block:\n%v\nfresh:\n%v", i, &a.resp, want)
		}
	}
	if len(a.resp.ResponseHeadersToAdd) != 3 {
		t.Fatalf("the sequence should end over the limit, with headers: %v", &a.resp)
	}
}

// TestCodecPath checks which path a call takes: on Portcullis's gRPC options the
// request is decoded from the wire and the answer is a pooled block; on a standard
// server the generated message is decoded and the handler copies it.
func TestCodecPath(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []grpc.ServerOption
		wire bool
	}{
		{"portcullis-codec", extauthz.ServerOptions(1 << 20), true},
		{"standard-codec", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var decoded, pooled atomic.Bool
			record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				resp, err := h(ctx, req)
				decoded.Store(req.(*wireRequest).decoded)
				_, ok := resp.(*pooledAnswer)
				pooled.Store(ok)
				return resp, err
			}
			cl := serveOn(t, memoryOptions(), grpc.NewServer(append(c.opts, grpc.ChainUnaryInterceptor(record))...))
			resp := call(t, cl, &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("remote_address", "10.7.7.7")}})
			if resp.Statuses[0].CurrentLimit.GetName() != "per-ip" {
				t.Fatalf("answer: %v", resp)
			}
			if decoded.Load() != c.wire || !pooled.Load() {
				t.Fatalf("decoded from the wire %v (want %v), pooled answer %v", decoded.Load(), c.wire, pooled.Load())
			}
		})
	}
}

// TestHandlerAllocations pins the pooled path's allocations on the memory store: the
// string copy of the request, and nothing else once the pools are warm.
func TestHandlerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	m := store.NewMemory(store.MemoryOptions{})
	s, err := New(Options{Limiter: func(store.Policy) store.Limiter { return m }, Domains: []Domain{{Name: "b",
		Descriptors: []Descriptor{{Key: "k", RateLimit: &RateLimit{Unit: "second", RequestsPerUnit: 1_000_000_000}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	b := marshal(t, &rlsv3.RateLimitRequest{Domain: "b", Descriptors: []*ratelimitv3.RateLimitDescriptor{desc("k", "v")}})
	data := mem.BufferSlice{mem.SliceBuffer(b)}
	dec := func(m any) error { return m.(*wireRequest).UnmarshalWire(data) }
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		v, err := shouldRateLimitHandler(s, ctx, dec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.(*pooledAnswer).Statuses[0].CurrentLimit == nil {
			t.Fatal("no limit applied")
		}
		v.(*pooledAnswer).ReleaseAfterMarshal()
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations per call, want at most 1", allocs)
	}
}

// A request with more descriptors or entries than a call may ask for is refused with
// InvalidArgument on both codecs, and decoding it keeps no more than the bounds: a
// 4 MB request of empty descriptors made one call allocate 918 MB (found by a second
// reader's review).
func TestDescriptorBounds(t *testing.T) {
	many := &rlsv3.RateLimitRequest{Domain: "edge"}
	for range maxDescriptors + 1 {
		many.Descriptors = append(many.Descriptors, desc("remote_address", "10.0.0.1"))
	}
	wide := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*ratelimitv3.RateLimitDescriptor{{}}}
	for range maxEntries + 1 {
		wide.Descriptors[0].Entries = append(wide.Descriptors[0].Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: "k", Value: "v"})
	}
	empties := make([]byte, 0, 2*200_000+6)
	empties = protowire.AppendTag(empties, fRequestDomain, protowire.BytesType)
	empties = protowire.AppendString(empties, "edge")
	for range 200_000 {
		empties = protowire.AppendTag(empties, fRequestDescriptors, protowire.BytesType)
		empties = protowire.AppendVarint(empties, 0)
	}
	for name, b := range map[string][]byte{"many": marshal(t, many), "wide": marshal(t, wide), "empties": empties} {
		var r request
		if err := decodeRequest(&r, b, string(b)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !r.overflow || len(r.descs) > maxDescriptors || len(r.entries) > maxEntries {
			t.Fatalf("%s: overflow %v with %d descriptors, %d entries kept", name, r.overflow, len(r.descs), len(r.entries))
		}
	}
	allowed := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: many.Descriptors[:maxDescriptors]}
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			c := serveOn(t, memoryOptions(), sv.new())
			for name, req := range map[string]*rlsv3.RateLimitRequest{"many": many, "wide": wide} {
				if _, err := c.ShouldRateLimit(context.Background(), req); status.Code(err) != codes.InvalidArgument {
					t.Errorf("%s: %v, want InvalidArgument", name, err)
				}
			}
			if _, err := c.ShouldRateLimit(context.Background(), allowed); err != nil {
				t.Errorf("%d descriptors: %v", maxDescriptors, err)
			}
		})
	}
}
