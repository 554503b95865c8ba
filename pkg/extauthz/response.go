package extauthz

import (
	"net/http"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

// Shared, read-only append flags. Protobuf messages may be marshaled concurrently, so
// every HeaderValueOption points at one of these two instead of allocating its own.
var (
	appendFalse = wrapperspb.Bool(false)
	appendTrue  = wrapperspb.Bool(true)
)

// Dynamic metadata keys, emitted under envoy.filters.http.ext_authz on every answer.
const (
	MetadataDecisionID = "decision_id"
	MetadataSubject    = "subject"
	MetadataAuthMethod = "auth_method"
	MetadataRoute      = "route"
	MetadataAllow      = "allow"
	MetadataReason     = "reason"
)

const requestIDHeader = "x-request-id"

// responseBlock holds one CheckResponse and everything it points to, so that building
// an answer allocates nothing once a block has been used: Register's handler takes
// blocks from a pool and the codec returns each after marshalling it (pooledResponse).
type responseBlock struct {
	resp   authv3.CheckResponse
	status statuspb.Status
	ok     authv3.CheckResponse_OkResponse
	okHTTP authv3.OkHttpResponse
	denied authv3.CheckResponse_DeniedResponse
	deny   authv3.DeniedHttpResponse
	code   typev3.HttpStatus
	md     structpb.Struct
	vals   [6]structpb.Value
	strs   [5]structpb.Value_StringValue
	flag   structpb.Value_BoolValue
	opts   headerOptions // backing of every HeaderValueOption
	// backings of the answer's slices, reused across answers
	headers, respHeaders []*corev3.HeaderValueOption
	remove               []string
}

// maxPooledOptions bounds the header options a pooled block keeps.
const maxPooledOptions = 64

// headerOption is one HeaderValueOption with its HeaderValue, allocated together.
type headerOption struct {
	opt corev3.HeaderValueOption
	hv  corev3.HeaderValue
}

// checkResponse translates a Decision into Envoy's CheckResponse, following ENVOY.md §3
// so the answer means the same on every Envoy version:
//
//   - Allow: status OK; ok_response.headers are d.Upstream.Set with lowercase keys, the
//     first entry of a name append=false (overwrite), later entries of that name
//     append=true; headers_to_remove are d.Upstream.Remove minus any name that is set
//     (Envoy removes after setting); query_parameters_to_remove are
//     d.Upstream.RemoveQuery; response_headers_to_add are d.Response. A generated request
//     id is set upstream and returned to the client.
//   - Deny: status PERMISSION_DENIED (Envoy treats every non-OK code alike; this one is
//     the documented choice and keeps failure_mode_allow out of policy decisions);
//     denied_response carries d.Status, d.Response, content-type and x-request-id, and
//     the JSON body {"error","reason","request_id"}.
//   - dynamic_metadata on both: decision id, subject, auth method, route, allow, reason.
func checkResponse(r *engine.Request, d *engine.Decision, generatedID bool) *authv3.CheckResponse {
	b := &responseBlock{}
	b.fill(r, d, generatedID)
	return &b.resp
}

// fill makes b the answer for r and d (see checkResponse), reusing what b holds from
// an earlier answer.
func (b *responseBlock) fill(r *engine.Request, d *engine.Decision, generatedID bool) {
	b.reset()
	b.resp.Status = &b.status
	b.resp.DynamicMetadata = b.metadata(r, d)
	if d.Allow {
		b.okResponse(r, d, generatedID)
	} else {
		b.deniedResponse(r, d)
	}
}

// reset clears b's answer, keeping its backing arrays (and its metadata map, whose six
// keys every answer sets again).
func (b *responseBlock) reset() {
	b.resp.HttpResponse, b.resp.DynamicMetadata = nil, nil
	b.status.Code, b.status.Message = 0, ""
	ok := &b.okHTTP
	ok.Headers, ok.HeadersToRemove, ok.QueryParametersToRemove, ok.ResponseHeadersToAdd = nil, nil, nil, nil
	b.deny.Status, b.deny.Headers, b.deny.Body = nil, nil, ""
	if cap(b.opts) > maxPooledOptions {
		b.opts, b.headers, b.respHeaders = nil, nil, nil
	}
	clear(b.opts[:cap(b.opts)])
	b.opts = b.opts[:0]
	clear(b.headers[:cap(b.headers)])
	clear(b.respHeaders[:cap(b.respHeaders)])
	clear(b.remove[:cap(b.remove)])
}

func (b *responseBlock) okResponse(r *engine.Request, d *engine.Decision, generatedID bool) {
	b.status.Code = int32(codes.OK)
	ok := &b.okHTTP
	b.ok.OkResponse = ok
	b.resp.HttpResponse = &b.ok

	setID := generatedID && !setsHeader(d.Upstream.Set, requestIDHeader)
	n := len(d.Upstream.Set) + headerCount(d.Response)
	if setID {
		n += 2
	}
	opts := b.options(n)
	ok.Headers = b.headers[:0]
	for _, hv := range d.Upstream.Set {
		name := strings.ToLower(hv.Name)
		ok.Headers = append(ok.Headers, opts.next(name, hv.Value, seen(ok.Headers, name)))
	}
	if setID {
		ok.Headers = append(ok.Headers, opts.next(requestIDHeader, r.ID, false))
	}
	b.headers = ok.Headers
	if len(ok.Headers) == 0 {
		ok.Headers = nil
	}
	rm := b.remove[:0]
	for _, name := range d.Upstream.Remove {
		if !setsHeader(d.Upstream.Set, name) {
			rm = append(rm, name)
		}
	}
	b.remove = rm
	if len(rm) > 0 {
		ok.HeadersToRemove = rm
	}
	ok.QueryParametersToRemove = d.Upstream.RemoveQuery
	rh := appendHeaders(opts, b.respHeaders[:0], d.Response)
	if setID {
		rh = append(rh, opts.next(requestIDHeader, r.ID, false))
	}
	b.respHeaders = rh
	if len(rh) > 0 {
		ok.ResponseHeadersToAdd = rh
	}
}

func (b *responseBlock) deniedResponse(r *engine.Request, d *engine.Decision) {
	b.status.Code = int32(codes.PermissionDenied)
	b.status.Message = d.Reason
	deny := &b.deny
	b.denied.DeniedResponse = deny
	b.resp.HttpResponse = &b.denied
	b.code.Code = httpStatus(d.Status)
	deny.Status = &b.code
	n := headerCount(d.Response) + 2
	opts := b.options(n)
	deny.Headers = appendHeaders(opts, b.headers[:0], d.Response)
	deny.Headers = append(deny.Headers,
		opts.next("content-type", "application/json", false),
		opts.next(requestIDHeader, r.ID, false))
	b.headers = deny.Headers
	deny.Body = errorBody(d.Message, d.Reason, r.ID)
}

// httpStatus maps a deny status to Envoy's StatusCode enum, whose validation accepts
// defined values only: an undefined 5xx becomes 500, anything else undefined 403.
func httpStatus(s int) typev3.StatusCode {
	if s == 0 {
		return typev3.StatusCode_Forbidden
	}
	c := typev3.StatusCode(s)
	if _, ok := typev3.StatusCode_name[int32(c)]; ok && s >= 400 {
		return c
	}
	if s >= 500 && s <= 599 {
		return typev3.StatusCode_InternalServerError
	}
	return typev3.StatusCode_Forbidden
}

// metadata builds the dynamic_metadata Struct without reflection.
func (b *responseBlock) metadata(r *engine.Request, d *engine.Decision) *structpb.Struct {
	subject, method := "", ""
	if d.Identity != nil {
		subject, method = d.Identity.Subject, d.Identity.Method
	}
	if b.md.Fields == nil {
		b.md.Fields = make(map[string]*structpb.Value, len(b.vals))
	}
	for i, kv := range [...]struct{ k, v string }{
		{MetadataDecisionID, r.ID}, {MetadataSubject, subject}, {MetadataAuthMethod, method},
		{MetadataRoute, d.Route}, {MetadataReason, d.Reason},
	} {
		b.strs[i].StringValue = kv.v
		b.vals[i].Kind = &b.strs[i]
		b.md.Fields[kv.k] = &b.vals[i]
	}
	b.flag.BoolValue = d.Allow
	b.vals[5].Kind = &b.flag
	b.md.Fields[MetadataAllow] = &b.vals[5]
	return &b.md
}

// headerOptions hands out HeaderValueOptions from one backing slice.
type headerOptions []headerOption

// options returns b's option backing with room for n options.
func (b *responseBlock) options(n int) *headerOptions {
	if cap(b.opts) < n {
		b.opts = make(headerOptions, 0, n)
	}
	return &b.opts
}

// next returns a filled option; append is explicit (ENVOY.md §3 rule 1). When the
// backing slice is full it allocates a new one (earlier options stay valid).
func (o *headerOptions) next(name, value string, appendValue bool) *corev3.HeaderValueOption {
	if len(*o) == cap(*o) {
		*o = make(headerOptions, 0, 4)
	}
	*o = append(*o, headerOption{})
	h := &(*o)[len(*o)-1]
	h.hv.Key, h.hv.Value = name, value
	h.opt.Header = &h.hv
	//lint:ignore SA1019 append is deprecated, but it is the only flag every Envoy version honours for ext_authz (ENVOY.md §3).
	h.opt.Append = appendFalse
	if appendValue {
		//lint:ignore SA1019 see above.
		h.opt.Append = appendTrue
	}
	return &h.opt
}

// appendHeaders appends h (sorted by name for a stable answer) as options: the first
// value of a name overwrites, further values append.
func appendHeaders(o *headerOptions, dst []*corev3.HeaderValueOption, h http.Header) []*corev3.HeaderValueOption {
	if len(h) == 0 {
		return dst
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := lowerKey(k)
		for i, v := range h[k] {
			dst = append(dst, o.next(name, v, i > 0))
		}
	}
	return dst
}

func headerCount(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}

// seen reports whether opts already holds a header named name.
func seen(opts []*corev3.HeaderValueOption, name string) bool {
	for _, o := range opts {
		if o.Header.Key == name {
			return true
		}
	}
	return false
}

// setsHeader reports whether set names header name (ASCII case-insensitive).
func setsHeader(set []engine.HeaderValue, name string) bool {
	for _, hv := range set {
		if strings.EqualFold(hv.Name, name) {
			return true
		}
	}
	return false
}

// lowerKey lowercases a canonical header key, without allocating for common ones.
func lowerKey(k string) string {
	switch k {
	case "Www-Authenticate":
		return "www-authenticate"
	case "Retry-After":
		return "retry-after"
	case "Ratelimit":
		return "ratelimit"
	case "Ratelimit-Policy":
		return "ratelimit-policy"
	case "Content-Type":
		return "content-type"
	case "Set-Cookie":
		return "set-cookie"
	case "Vary":
		return "vary"
	}
	return strings.ToLower(k)
}

// errorBody returns the JSON deny body {"error":msg,"reason":reason,"request_id":id}.
func errorBody(msg, reason, id string) string {
	return string(telemetry.AppendErrorBody(make([]byte, 0, telemetry.ErrorBodySize(msg, reason, id)), msg, reason, id))
}
