package jwt

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Header is the decoded JOSE header of a compact JWS. Nothing in it is trusted until
// the signature verifies; key-locating parameters (jku, x5u, jwk, x5c) are never read.
type Header struct {
	Alg     Alg    // zero when the name is not a supported algorithm
	AlgName string // as sent
	KeyID   string
	HasKID  bool
	Type    string
	// Fields holds every header member, for inspection tools.
	Fields map[string]any
}

// Compact is a strictly decoded compact JWS (RFC 7515 §7.1). Nothing in it is verified.
type Compact struct {
	Header Header
	// SigningInput is "<header>.<payload>" exactly as sent: what the signature covers.
	SigningInput []byte
	// Payload is the decoded payload; PayloadSegment is it base64url-encoded, as sent.
	Payload        []byte
	PayloadSegment string
	Signature      []byte
}

// strictB64 rejects padding and non-zero trailing bits; the alphabet check in
// decodeSegment rejects the CR and LF that encoding/base64 would otherwise skip.
var strictB64 = base64.RawURLEncoding.Strict()

// ParseCompact splits token into its three parts and decodes them strictly: canonical
// base64url only, a header that is a JSON object without duplicate keys whose
// registered members have the right types. It rejects JWE (five parts or "enc"),
// nested tokens (cty JWT), any "crit" (this verifier implements no extensions), an
// unencoded payload (b64), "none" and unknown algorithms. The payload is not parsed.
func ParseCompact(token string) (*Compact, error) {
	d1 := strings.IndexByte(token, '.')
	if d1 < 0 {
		return nil, errMalformed
	}
	d2 := d1 + 1 + strings.IndexByte(token[d1+1:], '.')
	if d2 <= d1 {
		return nil, errMalformed
	}
	if rest := token[d2+1:]; strings.IndexByte(rest, '.') >= 0 {
		if strings.Count(rest, ".") == 2 {
			return nil, errEncrypted
		}
		return nil, errMalformed
	}
	if d1 == 0 {
		return nil, errMalformed
	}
	hLen := strictB64.DecodedLen(d1)
	pLen := strictB64.DecodedLen(d2 - d1 - 1)
	sLen := strictB64.DecodedLen(len(token) - d2 - 1)
	// One allocation: the token bytes (signing input), then the three decoded parts.
	buf := make([]byte, len(token), len(token)+hLen+pLen+sLen)
	copy(buf, token)
	c := &Compact{SigningInput: buf[:d2], PayloadSegment: token[d1+1 : d2]}
	out := buf[len(token):]
	hdr, out, ok := decodeSegment(out, buf[:d1])
	if !ok {
		return nil, errBase64
	}
	if c.Payload, out, ok = decodeSegment(out, buf[d1+1:d2]); !ok {
		return nil, errBase64
	}
	if c.Signature, _, ok = decodeSegment(out, buf[d2+1:]); !ok {
		return nil, errBase64
	}
	if err := c.Header.decode(hdr); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeSegment decodes src into the start of dst and returns the decoded bytes and
// the rest of dst.
func decodeSegment(dst, src []byte) (seg, rest []byte, ok bool) {
	for _, c := range src {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, nil, false
		}
	}
	full := dst[:cap(dst)]
	n, err := strictB64.Decode(full[:strictB64.DecodedLen(len(src))], src)
	if err != nil {
		return nil, nil, false
	}
	return full[:n:n], full[n:n], true
}

// decode fills h from the header JSON and applies the header rules.
func (h *Header) decode(b []byte) error {
	m, err := parseJSONObject(b)
	if err != nil {
		if errors.Is(err, errJSONDuplicate) {
			return errDuplicateKey
		}
		return errHeaderJSON
	}
	h.Fields = m
	if _, ok := m["enc"]; ok {
		return errEncrypted
	}
	alg, ok := m["alg"].(string)
	if !ok {
		return errHeaderField
	}
	h.AlgName = alg
	if err := h.checkTypes(m); err != nil {
		return err
	}
	if _, ok := m["crit"]; ok {
		return errCrit
	}
	if b64, ok := m["b64"]; ok && b64 != true {
		return errB64
	}
	if alg == "none" {
		return errAlgNone
	}
	if h.Alg, ok = ParseAlg(alg); !ok {
		return errAlgUnknown
	}
	return nil
}

// checkTypes checks kid, typ and cty.
func (h *Header) checkTypes(m map[string]any) error {
	if v, ok := m["kid"]; ok {
		if h.KeyID, ok = v.(string); !ok {
			return errHeaderField
		}
		h.HasKID = true
	}
	if v, ok := m["typ"]; ok {
		if h.Type, ok = v.(string); !ok {
			return errHeaderField
		}
	}
	if v, ok := m["cty"]; ok {
		cty, ok := v.(string)
		if !ok {
			return errHeaderField
		}
		if strings.EqualFold(cty, "JWT") || strings.EqualFold(cty, "application/jwt") {
			return errNested
		}
	}
	return nil
}
