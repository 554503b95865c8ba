package extauthz

import (
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the default "proto" codec we delegate to
	"google.golang.org/grpc/mem"
)

// vtMarshaler is implemented by go-control-plane's messages when built with the
// vtprotobuf tag: generated marshalling without protobuf reflection (measured: the
// reflective marshal of a CheckResponse was ~15% of the server's CPU at 64 streams).
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

// codec marshals with the generated vtprotobuf code when the message has it and with
// the standard proto codec otherwise. It unmarshals a Check call's request
// (*checkWire, see Server.Register) with decodeCheckView, a WireUnmarshaler (pkg/rls's
// request) with its own decoder, everything else with the standard codec (Envoy's
// protos ship no generated unmarshalling). The wire format is identical. After
// marshalling a MarshalReleaser it releases it.
type codec struct{ std encoding.CodecV2 }

// WireUnmarshaler is a request message that decodes itself from the wire. It lets a
// service registered on the same gRPC listener (pkg/rls) skip protobuf-go's reflective
// decoding without importing this package; it must also be a proto message, for
// servers that use the standard codec.
type WireUnmarshaler interface {
	UnmarshalWire(data mem.BufferSlice) error
}

// MarshalReleaser is an answer taken from a pool: the codec marshals it and then
// calls ReleaseAfterMarshal, after which nothing reads it.
type MarshalReleaser interface {
	ReleaseAfterMarshal()
}

func newCodec() codec { return codec{std: encoding.GetCodecV2("proto")} }

func (c codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*pooledResponse); ok {
		defer p.release() // marshalled: nothing reads the answer after this
		v = &p.block.resp
	}
	if r, ok := v.(MarshalReleaser); ok {
		defer r.ReleaseAfterMarshal()
	}
	m, ok := v.(vtMarshaler)
	if !ok {
		return c.std.Marshal(v)
	}
	size := m.SizeVT()
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	n, err := m.MarshalToSizedBufferVTStrict((*buf)[:size])
	if err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("marshal %T: %w", v, err)
	}
	if n != size {
		pool.Put(buf)
		return nil, fmt.Errorf("marshal %T: wrote %d of %d bytes", v, n, size)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if w, ok := v.(*checkWire); ok {
		return w.unmarshal(data)
	}
	if w, ok := v.(WireUnmarshaler); ok {
		return w.UnmarshalWire(data)
	}
	return c.std.Unmarshal(data, v)
}

// checkWire is the request message of the Check handler registered by Server.Register:
// the pooled state that decodeCheckView fills from the wire.
type checkWire struct{ st *checkState }

// unmarshal copies the message into the state's reusable buffer (gRPC reuses data's
// buffers after Unmarshal returns) and decodes it. Strings are sliced from one string
// copy of the message, so they stay valid after the state is reused.
func (w *checkWire) unmarshal(data mem.BufferSlice) error {
	st := w.st
	st.wire = slices.Grow(st.wire[:0], data.Len())[:data.Len()]
	data.CopyTo(st.wire)
	return decodeCheckView(&st.view, st.wire, string(st.wire))
}

// codecOption installs the codec on a server.
func codecOption() grpc.ServerOption { return grpc.ForceServerCodecV2(newCodec()) }
