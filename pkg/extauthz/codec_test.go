package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
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
