package extauthz

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/portcullis/portcullis/pkg/engine"
)

// wireSeeds are encoded CheckRequests: every request case, pairs of them concatenated
// (protobuf merges a message's repeated occurrences, and a concatenation is such a
// merge), and the oddities below.
func wireSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	cases := requestCases()
	cases["oneof_replaced"] = checkRequest("203.0.113.9", "/x", nil, func(a *authv3.AttributeContext) {
		a.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/s"}}}
		a.RouteMetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"portcullis": {Fields: map[string]*structpb.Value{"route": structpb.NewNumberValue(3)}},
			"other":      {Fields: map[string]*structpb.Value{"route": structpb.NewStringValue("no")}},
		}}
	})
	seeds := map[string][]byte{}
	names := slices.Sorted(maps.Keys(cases))
	for _, name := range names {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cases[name])
		if err != nil {
			t.Fatal(err)
		}
		seeds[name] = b
	}
	for i, a := range names {
		b := names[(i+1)%len(names)]
		seeds[a+"+"+b] = append(slices.Clip(seeds[a]), seeds[b]...)
	}
	return seeds
}

// sameView reports how v (decoded from the wire) differs from w (from the message);
// the headers map is compared as a set, since a Go map has no order.
func sameView(v, w *checkView) string {
	if v.overflow || w.overflow {
		// Over the header bound the request is refused whatever was kept (the message
		// path's map order decides which headers that is).
		if v.overflow != w.overflow {
			return fmt.Sprintf("overflow %v, want %v", v.overflow, w.overflow)
		}
		return ""
	}
	byKey := func(h []headerField) map[string]string {
		m := map[string]string{}
		for _, f := range h {
			m[f.key] = f.value
		}
		return m
	}
	if len(v.headers) != len(w.headers) || !maps.Equal(byKey(v.headers), byKey(w.headers)) {
		return fmt.Sprintf("headers %q, want %q", v.headers, w.headers)
	}
	if !slices.Equal(v.headerMap, w.headerMap) {
		return fmt.Sprintf("header_map %q, want %q", v.headerMap, w.headerMap)
	}
	if !bytes.Equal(v.rawBody, w.rawBody) {
		return fmt.Sprintf("raw_body %q, want %q", v.rawBody, w.rawBody)
	}
	a, b := *v, *w
	a.headers, a.headerMap, a.rawBody, a.index = nil, nil, nil, nil
	b.headers, b.headerMap, b.rawBody, b.index = nil, nil, nil, nil
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%+v, want %+v", a, b)
	}
	return ""
}

// checkWireDecode is the differential property: decodeCheckView accepts what
// proto.Unmarshal accepts and reads the same values. It may accept more: protobuf-go
// parses every known field (and checks its strings' UTF-8), the decoder only the fields
// it reads, skipping the others by their length as it skips unknown fields. What it
// then reads must still translate (into a request or a 400) without panicking.
func checkWireDecode(t *testing.T, data []byte) {
	var cr authv3.CheckRequest
	perr := proto.Unmarshal(data, &cr)
	st := &checkState{}
	werr := decodeCheckView(&st.view, data, string(data))
	switch {
	case werr != nil && perr == nil:
		t.Fatalf("decoder rejected what protobuf accepts: %v", werr)
	case werr != nil:
		return
	case perr != nil:
		_ = requestFromView(st, trustedNets, clock) // its errors are answered 400; it must not panic
		return
	}
	got := &st.view
	var want checkView
	viewFromCheck(&want, &cr)
	if diff := sameView(got, &want); diff != "" {
		t.Fatal(diff)
	}
}

func TestDecodeCheckViewMatchesProto(t *testing.T) {
	for name, data := range wireSeeds(t) {
		t.Run(name, func(t *testing.T) { checkWireDecode(t, data) })
	}
}

func FuzzDecodeCheckView(f *testing.F) {
	for _, data := range wireSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(checkWireDecode)
}

// The wire path and the message path translate every request case into the same
// engine request (same golden rendering), through the codec as gRPC calls it.
func TestWireAndMessagePathsAgree(t *testing.T) {
	for name, cr := range requestCases() {
		data, err := proto.Marshal(cr)
		if err != nil {
			t.Fatal(err)
		}
		viaMsg := &checkState{}
		errMsg := requestFromCheck(viaMsg, cr, trustedNets, clock)
		viaWire := &checkState{}
		if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &checkWire{st: viaWire}); err != nil {
			t.Fatalf("%s: codec: %v", name, err)
		}
		errWire := requestFromView(viaWire, trustedNets, clock)
		a, b := describeRequest(viaWire, errWire), describeRequest(viaMsg, errMsg)
		if viaWire.generatedID || viaMsg.generatedID {
			// Generated ids differ by design; their shape is in the rendering.
			a, b = stripID(a), stripID(b)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: wire path\n%s\nmessage path\n%s", name, a, b)
		}
	}
}

func stripID(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "header X-Request-Id:") {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// Attack: a non-Envoy client sends many headers with repeats. Up to the bound the
// decoder keeps the last value of each key like protobuf, and the pooled view does not
// keep the outsized arrays; past it, on either path, the request is refused before its
// headers are copied (a 4 MB message of tiny header_map entries made one Check
// allocate 256 MB; found by a second reader's review).
func TestDecodeManyHeaders(t *testing.T) {
	many := func(n int) map[string]string {
		h := map[string]string{}
		for i := range n {
			h[fmt.Sprintf("x-h-%d", i)] = "v"
		}
		return h
	}
	data, err := proto.Marshal(checkRequest("203.0.113.9", "/x", many(maxHeaders)))
	if err != nil {
		t.Fatal(err)
	}
	dup, err := proto.Marshal(checkRequest("203.0.113.9", "/x", map[string]string{"x-h-7": "last"}))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, dup...)
	checkWireDecode(t, data)
	st := &checkState{}
	if err := (&checkWire{st: st}).unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}); err != nil {
		t.Fatal(err)
	}
	if len(st.view.headers) != maxHeaders {
		t.Fatalf("%d headers, want %d", len(st.view.headers), maxHeaders)
	}
	if err := requestFromView(st, trustedNets, clock); err != nil {
		t.Fatal(err)
	}
	if got := st.req.Header.Get("X-H-7"); got != "last" {
		t.Fatalf("x-h-7 = %q, want the last value", got)
	}
	st.reset()
	if cap(st.view.headers) != 0 || st.view.index != nil {
		t.Fatal("the pooled view kept an outsized request's arrays")
	}

	over := checkRequest("203.0.113.9", "/x", many(maxHeaders+1))
	overMap := checkRequest("203.0.113.9", "/x", nil)
	overMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{}
	for range maxHeaders + 1 {
		overMap.Attributes.Request.Http.HeaderMap.Headers = append(overMap.Attributes.Request.Http.HeaderMap.Headers,
			&corev3.HeaderValue{Key: "a", Value: "b"})
	}
	for name, cr := range map[string]*authv3.CheckRequest{"headers": over, "header_map": overMap} {
		data, err := proto.Marshal(cr)
		if err != nil {
			t.Fatal(err)
		}
		checkWireDecode(t, data)
		viaWire := &checkState{}
		if err := (&checkWire{st: viaWire}).unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}); err != nil {
			t.Fatal(err)
		}
		if err := requestFromView(viaWire, trustedNets, clock); !errors.Is(err, errTooManyHeaders) {
			t.Errorf("%s, wire path: %v, want %v", name, err, errTooManyHeaders)
		}
		if len(viaWire.view.headers) > maxHeaders || len(viaWire.view.headerMap) > maxHeaders {
			t.Errorf("%s: kept %d and %d headers", name, len(viaWire.view.headers), len(viaWire.view.headerMap))
		}
		if err := requestFromCheck(&checkState{}, cr, trustedNets, clock); !errors.Is(err, errTooManyHeaders) {
			t.Errorf("%s, message path: %v, want %v", name, err, errTooManyHeaders)
		}
	}
}

// Malformed messages are rejected, never half-read into a decision.
func TestDecodeMalformed(t *testing.T) {
	good, err := proto.Marshal(requestCases()["get_query"])
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":            good[:len(good)-3],
		"bad tag":              {0x00},
		"bad varint":           {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"length past end":      {0x0a, 0x7f, 0x01},
		"invalid utf-8 method": nest([]byte("G\xffT"), fHTTPMethod, fRequestHTTP, fAttrRequest, fCheckAttributes),
		"invalid utf-8 header": nest(nest([]byte("\xff"), fMapValue), fHTTPHeaders, fRequestHTTP, fAttrRequest, fCheckAttributes),
		// protobuf-go refuses field numbers above 2^29-1 (found by a second reader).
		"field number too large": protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), good...), protowire.MaxValidNumber+1, protowire.VarintType), 1),
	} {
		var v checkView
		if err := decodeCheckView(&v, data, string(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// nest wraps payload as field nums[0] of a message, that as field nums[1], and so on
// (protobuf-go refuses to marshal invalid UTF-8, so such messages are built here).
func nest(payload []byte, nums ...protowire.Number) []byte {
	for _, n := range nums {
		payload = protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), payload)
	}
	return payload
}

// A pooled response block reused across answers (Register's path) gives each time the
// answer a fresh block gives: nothing of an earlier answer leaks into a later one.
func TestResponseBlockReuse(t *testing.T) {
	cases := responseCases()
	names := slices.Sorted(maps.Keys(cases))
	var reused responseBlock
	for round := range 3 {
		for i := range names {
			// Each round visits the cases in another order.
			c := cases[names[(i*(round+1)+round)%len(names)]]
			r := &engine.Request{ID: c.id}
			reused.fill(r, &c.d, c.generated)
			want := checkResponse(r, &c.d, c.generated)
			if !proto.Equal(&reused.resp, want) {
				t.Fatalf("round %d, %s: reused block\n%v\nfresh\n%v", round, names[i], &reused.resp, want)
			}
		}
	}
}

// The codec marshals a pooled answer as its CheckResponse and returns it to its pool.
func TestCodecMarshalsAndReleasesPooledResponse(t *testing.T) {
	c := responseCases()["allow"]
	released := 0
	p := &pooledResponse{put: func(*pooledResponse) { released++ }}
	p.block.fill(&engine.Request{ID: c.id}, &c.d, false)
	want, err := proto.Marshal(&p.block.resp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newCodec().Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var a, b authv3.CheckResponse
	if err := proto.Unmarshal(got.Materialize(), &a); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&a, &b) {
		t.Fatalf("marshalled %v, want %v", &a, &b)
	}
	if released != 1 {
		t.Fatalf("the answer was returned to its pool %d times, want once", released)
	}
}
