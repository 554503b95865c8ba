package main

import (
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
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
		if diff := checkResponseDiff(&got, &want); diff != "" {
			t.Errorf("%s: %s", name, diff)
		}
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 0x08}, {0x0a}, {0xff}} {
		var got authv3.CheckResponse
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &got); err == nil {
			t.Errorf("% x: decoded a malformed response", bad)
		}
	}
}

// TestClientCodecRateLimitResponse: the lean decoder reads the same overall_code and
// status codes as the full protobuf decoder, skipping limits, durations and headers.
func TestClientCodecRateLimitResponse(t *testing.T) {
	rich := func(code rlsv3.RateLimitResponse_Code) *rlsv3.RateLimitResponse_DescriptorStatus {
		return &rlsv3.RateLimitResponse_DescriptorStatus{
			Code:               code,
			CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{Name: "per-ip", RequestsPerUnit: 100, Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE},
			LimitRemaining:     7,
			DurationUntilReset: durationpb.New(1500 * time.Millisecond),
		}
	}
	tests := map[string]*rlsv3.RateLimitResponse{
		"ok with limits and headers": {
			OverallCode:          rlsv3.RateLimitResponse_OK,
			Statuses:             []*rlsv3.RateLimitResponse_DescriptorStatus{rich(rlsv3.RateLimitResponse_OK), rich(rlsv3.RateLimitResponse_OK)},
			ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "ratelimit", Value: `"per-ip";r=7;t=2`}},
		},
		"over limit in the second descriptor": {
			OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT,
			Statuses:    []*rlsv3.RateLimitResponse_DescriptorStatus{rich(rlsv3.RateLimitResponse_OK), rich(rlsv3.RateLimitResponse_OVER_LIMIT)},
			RawBody:     []byte("slow down"),
		},
		"bare ok (the floor's answer)": {
			OverallCode: rlsv3.RateLimitResponse_OK,
			Statuses:    []*rlsv3.RateLimitResponse_DescriptorStatus{{Code: rlsv3.RateLimitResponse_OK}},
		},
		"empty": {},
	}
	c := newClientCodec()
	for name, in := range tests {
		wire, err := proto.Marshal(in)
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		var got rlsv3.RateLimitResponse
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got); err != nil {
			t.Fatalf("%s: unmarshal: %v", name, err)
		}
		if diff := rateLimitResponseDiff(&got, in); diff != "" {
			t.Errorf("%s: %s", name, diff)
		}
	}
	// A status cut short, a status whose code is cut short, a code with no value, a
	// truncated tag.
	for _, bad := range [][]byte{{0x12, 0x05, 0x08}, {0x12, 0x01, 0x08}, {0x08}, {0xff}} {
		var got rlsv3.RateLimitResponse
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &got); err == nil {
			t.Errorf("% x: decoded a malformed response", bad)
		}
	}
}

// TestRateLimitFieldNumbers pins the field numbers the lean decoder uses to the proto's.
func TestRateLimitFieldNumbers(t *testing.T) {
	resp := (&rlsv3.RateLimitResponse{}).ProtoReflect().Descriptor().Fields()
	st := (&rlsv3.RateLimitResponse_DescriptorStatus{}).ProtoReflect().Descriptor().Fields()
	for _, c := range []struct {
		name string
		got  protoreflect.FieldNumber
		want int
	}{
		{"overall_code", resp.ByName("overall_code").Number(), fieldOverallCode},
		{"statuses", resp.ByName("statuses").Number(), fieldStatuses},
		{"DescriptorStatus.code", st.ByName("code").Number(), fieldDescriptorCode},
	} {
		if int(c.got) != c.want {
			t.Errorf("%s is field %d in the proto, the decoder reads %d", c.name, c.got, c.want)
		}
	}
}

// BenchmarkDecodeRateLimitResponse compares the lean decoder with protobuf-go's on
// Portcullis's answer to one descriptor (limit, remaining, reset).
func BenchmarkDecodeRateLimitResponse(b *testing.B) {
	wire, err := proto.Marshal(&rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{
			Code:               rlsv3.RateLimitResponse_OK,
			CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{Name: "bench", RequestsPerUnit: 1_000_000_000, Unit: rlsv3.RateLimitResponse_RateLimit_SECOND},
			LimitRemaining:     999_999_999,
			DurationUntilReset: durationpb.New(time.Microsecond),
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(wire)}
	c := newClientCodec()
	for _, bc := range []struct {
		name   string
		decode func(*rlsv3.RateLimitResponse) error
	}{
		{"lean", func(r *rlsv3.RateLimitResponse) error { return c.Unmarshal(data, r) }},
		{"protobuf", func(r *rlsv3.RateLimitResponse) error { return c.std.Unmarshal(data, r) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r rlsv3.RateLimitResponse
				if err := bc.decode(&r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodeRateLimitResponse: on any bytes the lean decoder does not panic, and
// whatever protobuf-go accepts it accepts too, with the same overall_code and status
// codes.
func FuzzDecodeRateLimitResponse(f *testing.F) {
	for _, r := range []*rlsv3.RateLimitResponse{
		{},
		{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT, Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{
			{Code: rlsv3.RateLimitResponse_OK, LimitRemaining: 3, DurationUntilReset: durationpb.New(time.Second)},
			{Code: rlsv3.RateLimitResponse_OVER_LIMIT, CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{Name: "n", RequestsPerUnit: 1}},
		}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x01, 0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		var lean, full rlsv3.RateLimitResponse
		leanErr := decodeRateLimitResponse(b, &lean)
		if proto.Unmarshal(b, &full) != nil {
			return
		}
		if leanErr != nil {
			t.Fatalf("protobuf-go accepts % x, the lean decoder does not: %v", b, leanErr)
		}
		if diff := rateLimitResponseDiff(&lean, &full); diff != "" {
			t.Fatalf("% x: %s", b, diff)
		}
	})
}

// FuzzDecodeCheckResponse: on any bytes the lean decoder does not panic, and whatever
// protobuf-go accepts it accepts too, reading the same status, ok/denied choice, HTTP
// status and body (merging a message field seen twice as protobuf-go does).
func FuzzDecodeCheckResponse(f *testing.F) {
	for _, r := range []*authv3.CheckResponse{
		{},
		{Status: &statuspb.Status{Code: 0}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-portcullis-subject", Value: "alice"}}},
		}}},
		{Status: &statuspb.Status{Code: 7, Message: "denied"}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: "no",
		}}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, b...)) // every field twice: merged
	}
	// status {code 7} then status {message "x"}: one status {7, "x"}; denied_response
	// {status 403} then denied_response {body "n"}: one denial with both.
	f.Add([]byte{0x0a, 0x02, 0x08, 0x07, 0x0a, 0x03, 0x12, 0x01, 'x'})
	f.Add([]byte{0x12, 0x05, 0x0a, 0x03, 0x08, 0x93, 0x03, 0x12, 0x03, 0x1a, 0x01, 'n'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var lean, full authv3.CheckResponse
		leanErr := decodeCheckResponse(b, &lean)
		if proto.Unmarshal(b, &full) != nil {
			return
		}
		if leanErr != nil {
			t.Fatalf("protobuf-go accepts % x, the lean decoder does not: %v", b, leanErr)
		}
		if diff := checkResponseDiff(&lean, &full); diff != "" {
			t.Fatalf("% x: %s", b, diff)
		}
	})
}

// checkResponseDiff describes where got differs from want in what the lean decoder
// reads ("" when nowhere).
func checkResponseDiff(got, want *authv3.CheckResponse) string {
	if got.GetStatus().GetCode() != want.GetStatus().GetCode() || got.GetStatus().GetMessage() != want.GetStatus().GetMessage() {
		return fmt.Sprintf("status %v, want %v", got.GetStatus(), want.GetStatus())
	}
	if (got.GetOkResponse() != nil) != (want.GetOkResponse() != nil) {
		return fmt.Sprintf("ok_response set %v, want %v", got.GetOkResponse() != nil, want.GetOkResponse() != nil)
	}
	gd, wd := got.GetDeniedResponse(), want.GetDeniedResponse()
	if (gd != nil) != (wd != nil) || gd.GetStatus().GetCode() != wd.GetStatus().GetCode() || gd.GetBody() != wd.GetBody() {
		return fmt.Sprintf("denied %v, want %v", gd, wd)
	}
	return ""
}

// rateLimitResponseDiff describes where got differs from want in what the lean decoder
// reads ("" when nowhere).
func rateLimitResponseDiff(got, want *rlsv3.RateLimitResponse) string {
	if got.GetOverallCode() != want.GetOverallCode() || len(got.GetStatuses()) != len(want.GetStatuses()) {
		return fmt.Sprintf("%v with %d statuses, want %v with %d",
			got.GetOverallCode(), len(got.GetStatuses()), want.GetOverallCode(), len(want.GetStatuses()))
	}
	for i, st := range want.GetStatuses() {
		if got.Statuses[i].GetCode() != st.GetCode() {
			return fmt.Sprintf("status %d code %v, want %v", i, got.Statuses[i].GetCode(), st.GetCode())
		}
	}
	return ""
}
