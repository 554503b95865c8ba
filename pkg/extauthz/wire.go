package extauthz

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers (envoy/service/auth/v3/attribute_context.proto, external_auth.proto,
// envoy/config/core/v3/address.proto, base.proto, google/protobuf/struct.proto and
// timestamp.proto).
const (
	fCheckAttributes = 1 // CheckRequest.attributes

	fAttrSource        = 1  // AttributeContext.source: Peer
	fAttrRequest       = 4  // AttributeContext.request: Request
	fAttrContextExt    = 10 // AttributeContext.context_extensions: map<string,string>
	fAttrTLSSession    = 12 // AttributeContext.tls_session: TLSSession
	fAttrRouteMetadata = 13 // AttributeContext.route_metadata_context: Metadata

	fPeerAddress   = 1 // Peer.address: Address
	fPeerPrincipal = 4 // Peer.principal

	fAddressSocket = 1 // Address.socket_address (oneof address)
	fAddressPipe   = 2 // Address.pipe (oneof address)
	fAddressIntern = 3 // Address.envoy_internal_address (oneof address)
	fSocketAddress = 2 // SocketAddress.address

	fRequestTime = 1 // Request.time: Timestamp
	fRequestHTTP = 2 // Request.http: HttpRequest
	fTimeSeconds = 1 // Timestamp.seconds
	fTimeNanos   = 2 // Timestamp.nanos

	fHTTPMethod    = 2  // HttpRequest.method
	fHTTPHeaders   = 3  // HttpRequest.headers: map<string,string>
	fHTTPPath      = 4  // HttpRequest.path
	fHTTPHost      = 5  // HttpRequest.host
	fHTTPScheme    = 6  // HttpRequest.scheme
	fHTTPProtocol  = 10 // HttpRequest.protocol
	fHTTPBody      = 11 // HttpRequest.body
	fHTTPRawBody   = 12 // HttpRequest.raw_body
	fHTTPHeaderMap = 13 // HttpRequest.header_map: HeaderMap

	fHeaderMapHeaders = 1 // HeaderMap.headers: repeated HeaderValue
	fHVKey            = 1 // HeaderValue.key
	fHVValue          = 2 // HeaderValue.value
	fHVRawValue       = 3 // HeaderValue.raw_value

	fMapKey   = 1 // map entry key
	fMapValue = 2 // map entry value

	fMetadataFilter = 1 // Metadata.filter_metadata: map<string, Struct>
	fStructFields   = 1 // Struct.fields: map<string, Value>
	fValueString    = 3 // Value.string_value (oneof kind: fields 1-6)
	fValueLastKind  = 6
)

// valueKindType is the wire type of each member of google.protobuf.Value's oneof kind:
// null_value, number_value, string_value, bool_value, struct_value, list_value.
var valueKindType = [fValueLastKind + 1]protowire.Type{0, protowire.VarintType, protowire.Fixed64Type,
	protowire.BytesType, protowire.VarintType, protowire.BytesType, protowire.BytesType}

var (
	errWireMalformed = errors.New("check request: malformed protobuf")
	errWireUTF8      = errors.New("check request: string field is not valid UTF-8")
)

// decodeCheckView fills v from the CheckRequest wire bytes b. Strings are sliced from s,
// which must hold the same bytes as b (one copy for the whole message); raw_body
// aliases b. Like protobuf-go it merges repeated occurrences of a message field, keeps
// the last value of a repeated scalar and of a repeated map key, skips unknown fields,
// and rejects malformed framing and invalid UTF-8 in the string fields it reads. The
// content of a field it does not read is skipped by its length, unparsed, like an
// unknown field: where protobuf-go would reject a malformed message nested in such a
// field (destination, metadata_context, ...), this decoder reads the request without it.
func decodeCheckView(v *checkView, b []byte, s string) error {
	d := wireDecoder{v: v, buf: b, str: s}
	it := d.iter(0, len(b))
	for f, ok := it.next(); ok; f, ok = it.next() {
		if isBytes(f, fCheckAttributes) {
			if err := d.attributes(f); err != nil {
				return err
			}
		}
	}
	return it.err
}

// wireDecoder reads one message held in buf (and str, the same bytes as a string).
// It walks fields with an iterator rather than callbacks, so decoding allocates
// nothing but the view's slices.
type wireDecoder struct {
	v   *checkView
	buf []byte
	str string
}

// field is one decoded field: its number and wire type, its varint value, and for a
// bytes field the bounds [start, end) of its payload in the message.
type field struct {
	num        protowire.Number
	typ        protowire.Type
	varint     uint64
	start, end int
}

// fieldIter yields the fields of the message in buf[i:end]; err is set, and iteration
// stops, at the first malformed field.
type fieldIter struct {
	buf    []byte
	i, end int
	err    error
}

func (d *wireDecoder) iter(start, end int) fieldIter {
	return fieldIter{buf: d.buf, i: start, end: end}
}

// sub iterates over the embedded message that bytes field f holds.
func (d *wireDecoder) sub(f field) fieldIter { return d.iter(f.start, f.end) }

func (it *fieldIter) next() (field, bool) {
	if it.i >= it.end || it.err != nil {
		return field{}, false
	}
	b := it.buf[it.i:it.end]
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num > protowire.MaxValidNumber {
		it.err = errWireMalformed
		return field{}, false
	}
	f := field{num: num, typ: typ}
	var m int
	switch typ {
	case protowire.VarintType:
		f.varint, m = protowire.ConsumeVarint(b[n:])
	case protowire.BytesType:
		var payload []byte
		payload, m = protowire.ConsumeBytes(b[n:])
		f.start = it.i + n + m - len(payload)
		f.end = f.start + len(payload)
	default:
		m = protowire.ConsumeFieldValue(num, typ, b[n:])
	}
	if m < 0 {
		it.err = errWireMalformed
		return field{}, false
	}
	it.i += n + m
	return f, true
}

// text returns the payload of a bytes field as a string, checked for UTF-8.
func (d *wireDecoder) text(f field) (string, error) {
	s := d.str[f.start:f.end]
	if !utf8.ValidString(s) {
		return "", errWireUTF8
	}
	return s, nil
}

func isBytes(f field, num protowire.Number) bool {
	return f.num == num && f.typ == protowire.BytesType
}

func (d *wireDecoder) attributes(f field) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		var err error
		switch {
		case isBytes(f, fAttrSource):
			err = d.peer(f)
		case isBytes(f, fAttrRequest):
			err = d.request(f)
		case isBytes(f, fAttrContextExt):
			var k, val string
			if k, val, err = d.stringEntry(f); err == nil && k == RouteExtensionKey {
				d.v.routeExt = val
			}
		case isBytes(f, fAttrTLSSession):
			d.v.tls = true
		case isBytes(f, fAttrRouteMetadata):
			err = d.metadata(f)
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

func (d *wireDecoder) peer(f field) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		var err error
		switch {
		case isBytes(f, fPeerAddress):
			err = d.address(f)
		case isBytes(f, fPeerPrincipal):
			d.v.principal, err = d.text(f)
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

// address reads the socket_address member of Address's oneof. Another member replaces
// it (the source becomes unknown). A socket_address merges into an earlier one; after
// another member source is already "", so it starts afresh.
func (d *wireDecoder) address(f field) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case isBytes(f, fAddressSocket):
			sa := d.sub(f)
			for f, ok := sa.next(); ok; f, ok = sa.next() {
				if isBytes(f, fSocketAddress) {
					var err error
					if d.v.source, err = d.text(f); err != nil {
						return err
					}
				}
			}
			if sa.err != nil {
				return sa.err
			}
		case isBytes(f, fAddressPipe), isBytes(f, fAddressIntern):
			d.v.source = ""
		}
	}
	return it.err
}

func (d *wireDecoder) request(f field) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case isBytes(f, fRequestTime):
			d.v.timeSet = true
			ts := d.sub(f)
			for f, ok := ts.next(); ok; f, ok = ts.next() {
				switch {
				case f.num == fTimeSeconds && f.typ == protowire.VarintType:
					d.v.seconds = int64(f.varint)
				case f.num == fTimeNanos && f.typ == protowire.VarintType:
					d.v.nanos = int32(f.varint)
				}
			}
			if ts.err != nil {
				return ts.err
			}
		case isBytes(f, fRequestHTTP):
			d.v.hasHTTP = true
			if err := d.http(f); err != nil {
				return err
			}
		}
	}
	return it.err
}

func (d *wireDecoder) http(f field) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		if f.typ != protowire.BytesType {
			continue
		}
		var err error
		switch f.num {
		case fHTTPMethod:
			d.v.method, err = d.text(f)
		case fHTTPPath:
			d.v.path, err = d.text(f)
		case fHTTPHost:
			d.v.host, err = d.text(f)
		case fHTTPScheme:
			d.v.scheme, err = d.text(f)
		case fHTTPProtocol:
			d.v.protocol, err = d.text(f)
		case fHTTPBody:
			d.v.body, err = d.text(f)
		case fHTTPRawBody:
			d.v.rawBody = d.buf[f.start:f.end:f.end]
		case fHTTPHeaders:
			var k, val string
			if k, val, err = d.stringEntry(f); err == nil {
				d.v.setHeader(k, val)
			}
		case fHTTPHeaderMap:
			hm := d.sub(f)
			for f, ok := hm.next(); ok && err == nil; f, ok = hm.next() {
				if isBytes(f, fHeaderMapHeaders) {
					err = d.headerValue(f)
				}
			}
			if err == nil {
				err = hm.err
			}
		}
		if err != nil {
			return err
		}
	}
	return it.err
}

// headerValue appends one HeaderValue of header_map: the last key and value, the raw
// value when set.
func (d *wireDecoder) headerValue(f field) error {
	var key, val string
	var raw field
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		if f.typ != protowire.BytesType {
			continue
		}
		var err error
		switch f.num {
		case fHVKey:
			key, err = d.text(f)
		case fHVValue:
			val, err = d.text(f)
		case fHVRawValue:
			raw = f
		}
		if err != nil {
			return err
		}
	}
	if it.err != nil {
		return it.err
	}
	if raw.end > raw.start {
		val = d.str[raw.start:raw.end]
	}
	if len(d.v.headerMap) == maxHeaders {
		d.v.overflow = true
		return nil
	}
	d.v.headerMap = append(d.v.headerMap, headerField{key, val})
	return nil
}

// entry reads one map entry: its last key (checked for UTF-8), its last value field,
// and how many value fields it has (a message value's occurrences merge).
func (d *wireDecoder) entry(f field) (key string, last field, n int, err error) {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case fMapKey:
			if key, err = d.text(f); err != nil {
				return "", last, 0, err
			}
		case fMapValue:
			last, n = f, n+1
		}
	}
	return key, last, n, it.err
}

// stringEntry reads one map<string,string> entry: the last key and the last value
// ("" when absent); every value occurrence is checked for UTF-8.
func (d *wireDecoder) stringEntry(f field) (string, string, error) {
	key, last, n, err := d.entry(f)
	if err != nil || n == 0 {
		return key, "", err
	}
	if n > 1 {
		if err := d.eachValue(f, func(v field) error { _, err := d.text(v); return err }); err != nil {
			return "", "", err
		}
	}
	val, err := d.text(last)
	return key, val, err
}

// eachValue calls fn for each value occurrence of map entry f (the rare case of more
// than one).
func (d *wireDecoder) eachValue(f field, fn func(field) error) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		if isBytes(f, fMapValue) {
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return it.err
}

// metadata reads filter_metadata["portcullis"].fields["route"]. A repeated map key
// replaces the earlier Struct; repeated occurrences of one entry's value merge.
func (d *wireDecoder) metadata(f field) error {
	return d.keyedValues(f, fMetadataFilter, MetadataNamespace, d.structFields)
}

// structFields reads the "route" entry of a Struct's fields: a repeated key replaces,
// and within a Value the last member of the oneof kind wins.
func (d *wireDecoder) structFields(f field) error {
	return d.keyedValues(f, fStructFields, RouteExtensionKey, d.valueKind)
}

// keyedValues finds the entries of map field num (in message f) whose key is key; for
// each, routeMeta restarts from "" (a repeated key replaces the earlier value) and fn
// reads each occurrence of the entry's value (occurrences merge).
func (d *wireDecoder) keyedValues(f field, num protowire.Number, key string, fn func(field) error) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		if !isBytes(f, num) {
			continue
		}
		k, _, _, err := d.entry(f)
		if err != nil {
			return err
		}
		if k != key {
			continue
		}
		d.v.routeMeta = ""
		if err := d.eachValue(f, fn); err != nil {
			return err
		}
	}
	return it.err
}

// valueKind applies one google.protobuf.Value occurrence to routeMeta.
func (d *wireDecoder) valueKind(f field) error {
	it := d.sub(f)
	for f, ok := it.next(); ok; f, ok = it.next() {
		if f.num < 1 || f.num > fValueLastKind || f.typ != valueKindType[f.num] {
			continue // not a member of the oneof: an unknown field
		}
		d.v.routeMeta = ""
		if f.num == fValueString {
			var err error
			if d.v.routeMeta, err = d.text(f); err != nil {
				return err
			}
		}
	}
	return it.err
}
