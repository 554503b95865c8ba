package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The codec's bytes decode to the same message as the standard codec's, whichever
// marshaller the build has (vtprotobuf tag or not).
func TestCodecRoundTrip(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{"subject": "alice", "allow": true})
	resp := &authv3.CheckResponse{
		Status: &status.Status{Code: 0},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-portcullis-subject", Value: "alice"},
				Append: wrapperspb.Bool(false)}},
			HeadersToRemove: []string{"x-portcullis-issuer"},
		}},
		DynamicMetadata: md,
	}
	c := newCodec()
	bs, err := c.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Free()
	var got authv3.CheckResponse
	if err := proto.Unmarshal(bs.Materialize(), &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(resp, &got) {
		t.Fatalf("round trip differs:\n%v\n%v", resp, &got)
	}
	_, vt := any(resp).(vtMarshaler)
	t.Logf("vtprotobuf marshaller compiled in: %v", vt)
}

// selfDecoding is a request that decodes itself (as pkg/rls's does); it embeds a proto
// message for servers on the standard codec.
type selfDecoding struct {
	*wrapperspb.StringValue
	got []byte
}

func (m *selfDecoding) UnmarshalWire(data mem.BufferSlice) error {
	m.got = data.Materialize()
	return nil
}

// releasedAnswer is a pooled answer (as pkg/rls's is): the codec must marshal the
// message it embeds and then release it, once.
type releasedAnswer struct {
	*wrapperspb.StringValue
	released int
}

func (a *releasedAnswer) ReleaseAfterMarshal() { a.released++ }

// TestCodecInterfaces checks that the codec hands a WireUnmarshaler the wire bytes
// untouched (no protobuf-go decoding) and releases a MarshalReleaser after marshalling
// what it embeds.
func TestCodecInterfaces(t *testing.T) {
	c := newCodec()
	wire, err := proto.Marshal(wrapperspb.String("from the wire"))
	if err != nil {
		t.Fatal(err)
	}
	req := &selfDecoding{StringValue: &wrapperspb.StringValue{}}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, req); err != nil {
		t.Fatal(err)
	}
	if string(req.got) != string(wire) || req.GetValue() != "" {
		t.Fatalf("UnmarshalWire got %q, embedded message %q: the codec decoded it itself", req.got, req.GetValue())
	}

	ans := &releasedAnswer{StringValue: wrapperspb.String("answer")}
	bs, err := c.Marshal(ans)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Free()
	var back wrapperspb.StringValue
	if err := proto.Unmarshal(bs.Materialize(), &back); err != nil || back.GetValue() != "answer" {
		t.Fatalf("marshalled %q (%v), want the embedded message", back.GetValue(), err)
	}
	if ans.released != 1 {
		t.Fatalf("released %d times, want once", ans.released)
	}
}
