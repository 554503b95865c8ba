package extauthz

import authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

// checkView is the part of a CheckRequest that requestFromView reads. It is filled
// either from a decoded *authv3.CheckRequest (viewFromCheck) or straight from the wire
// bytes (decodeCheckView), so both paths share one translation into engine.Request.
//
// Why decode the wire ourselves: Envoy's protos ship no generated unmarshalling, and
// protobuf-go's reflective decoding of a CheckRequest (maps of headers, nested
// messages) was ~20% of the server's CPU per Check at 64 concurrent streams, building
// a message that is thrown away after being copied into engine.Request. This decoder
// reads only the fields below, into strings sliced from one copy of the message.
type checkView struct {
	hasHTTP   bool
	method    string
	path      string
	host      string
	scheme    string
	protocol  string
	headers   []headerField // the headers map: keys unique, a repeated key replaces
	headerMap []headerField // header_map.headers in order; raw_value, when set, as value
	body      string
	rawBody   []byte
	source    string // source.address.socket_address.address
	principal string // source.principal
	tls       bool   // tls_session present
	timeSet   bool   // request.time present
	seconds   int64
	nanos     int32
	routeExt  string // context_extensions["route"]
	routeMeta string // route_metadata_context.filter_metadata["portcullis"].fields["route"] string value
	// overflow: the request has more than maxHeaders entries in headers or in
	// header_map; no more were kept, and the request is refused.
	overflow bool

	index map[string]int // headers by key, once there are more than linearHeaders
}

type headerField struct{ key, value string }

// reset empties v, keeping the capacity of its slices.
func (v *checkView) reset() {
	if cap(v.headers) > maxPooledHeaders || cap(v.headerMap) > maxPooledHeaders {
		v.headers, v.headerMap, v.index = nil, nil, nil // an outsized request's arrays are not kept
	}
	clear(v.headers[:cap(v.headers)])
	clear(v.headerMap[:cap(v.headerMap)])
	clear(v.index)
	*v = checkView{headers: v.headers[:0], headerMap: v.headerMap[:0], index: v.index}
}

// viewFromCheck fills v from a decoded CheckRequest.
func viewFromCheck(v *checkView, cr *authv3.CheckRequest) {
	attrs := cr.GetAttributes()
	src := attrs.GetSource()
	v.source = src.GetAddress().GetSocketAddress().GetAddress()
	v.principal = src.GetPrincipal()
	v.tls = attrs.GetTlsSession() != nil
	v.routeExt = attrs.GetContextExtensions()[RouteExtensionKey]
	md := attrs.GetRouteMetadataContext().GetFilterMetadata()[MetadataNamespace]
	v.routeMeta = md.GetFields()[RouteExtensionKey].GetStringValue()
	if t := attrs.GetRequest().GetTime(); t != nil {
		v.timeSet, v.seconds, v.nanos = true, t.GetSeconds(), t.GetNanos()
	}
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return
	}
	v.hasHTTP = true
	v.method, v.path, v.host, v.scheme, v.protocol = h.GetMethod(), h.GetPath(), h.GetHost(), h.GetScheme(), h.GetProtocol()
	v.body, v.rawBody = h.GetBody(), h.GetRawBody()
	if len(h.GetHeaders()) > maxHeaders || len(h.GetHeaderMap().GetHeaders()) > maxHeaders {
		v.overflow = true
		return
	}
	for k, val := range h.GetHeaders() {
		v.headers = append(v.headers, headerField{k, val})
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		val := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			val = string(hv.GetRawValue())
		}
		v.headerMap = append(v.headerMap, headerField{hv.GetKey(), val})
	}
}

// setHeader records one headers-map entry; a repeated key replaces the earlier value.
// Up to linearHeaders entries a scan finds the key; beyond that an index does, so a
// message with many thousands of headers costs linear time, not quadratic.
func (v *checkView) setHeader(k, val string) {
	if len(v.headers) < linearHeaders {
		for i := range v.headers {
			if v.headers[i].key == k {
				v.headers[i].value = val
				return
			}
		}
	} else {
		if v.index == nil {
			v.index = make(map[string]int, 2*linearHeaders)
		}
		if len(v.index) == 0 {
			for i, h := range v.headers {
				v.index[h.key] = i
			}
		}
		if i, ok := v.index[k]; ok {
			v.headers[i].value = val
			return
		}
		if len(v.headers) == maxHeaders {
			v.overflow = true
			return
		}
		v.index[k] = len(v.headers)
	}
	v.headers = append(v.headers, headerField{k, val})
}

// linearHeaders is the headers-map size up to which setHeader scans for duplicates;
// maxPooledHeaders bounds the header arrays a pooled view keeps across requests.
const (
	linearHeaders    = 32
	maxPooledHeaders = 256
	// maxHeaders bounds each of headers and header_map: ten times Envoy's default
	// max_headers_count, yet small enough that a message of tiny entries cannot make a
	// Check allocate many times its size (4-byte header_map entries in a 4 MB request
	// made one Check allocate 256 MB before the bound).
	maxHeaders = 1024
)
