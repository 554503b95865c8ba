package main

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestClientCodecCheckResponse: the lean decoder reads the same status, ok/denied choice,
// HTTP status and body as the full protobuf decoder, skipping the rest of rich answers.
func TestClientCodecCheckResponse(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{"subject": "alice", "allow": true})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]*authv3.CheckResponse{
		"ok with headers and metadata": {
			Status:          &statuspb.Status{Code: 0},
			DynamicMetadata: md,
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-portcullis-subject", Value: "alice"}}},
				HeadersToRemove: []string{"x-portcullis-scopes"},
			}},
		},
		"denied": {
			Status:          &statuspb.Status{Code: 7, Message: "apikey.invalid"},
			DynamicMetadata: md,
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: "Bearer"}}},
				Body:    `{"error":"unauthorized"}`,
			}},
		},
		"empty (status absent means OK)": {},
	}
	c := newClientCodec()
	for name, in := range tests {
		wire, err := c.Marshal(in)
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		var want authv3.CheckResponse
		if err := proto.Unmarshal(wire.Materialize(), &want); err != nil {
			t.Fatalf("%s: proto.Unmarshal: %v", name, err)
		}
		if !proto.Equal(&want, in) {
			t.Fatalf("%s: vtprotobuf marshal does not round-trip", name)
		}
		var got authv3.CheckResponse
		if err := c.Unmarshal(wire, &got); err != nil {
			t.Fatalf("%s: unmarshal: %v", name, err)
		}
		if got.GetStatus().GetCode() != want.GetStatus().GetCode() || got.GetStatus().GetMessage() != want.GetStatus().GetMessage() {
			t.Errorf("%s: status %v, want %v", name, got.GetStatus(), want.GetStatus())
		}
		if (got.GetOkResponse() != nil) != (want.GetOkResponse() != nil) {
			t.Errorf("%s: ok_response set %v, want %v", name, got.GetOkResponse() != nil, want.GetOkResponse() != nil)
		}
		gd, wd := got.GetDeniedResponse(), want.GetDeniedResponse()
		if (gd != nil) != (wd != nil) || gd.GetStatus().GetCode() != wd.GetStatus().GetCode() || gd.GetBody() != wd.GetBody() {
			t.Errorf("%s: denied %v, want %v", name, gd, wd)
		}
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 0x08}, {0x0a}, {0xff}} {
		var got authv3.CheckResponse
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &got); err == nil {
			t.Errorf("% x: decoded a malformed response", bad)
		}
	}
}
