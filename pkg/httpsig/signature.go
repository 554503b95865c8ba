package httpsig

import (
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// maxSignatures bounds the signatures parsed from one message.
const maxSignatures = 16

// Signature is one signature carried by a message: a Signature-Input member and the
// Signature member with the same label.
type Signature struct {
	Label      string
	Components []Component
	// Params are the signature parameters exactly as received, in order; the typed
	// fields below are read from them.
	Params  sfv.Params
	Created time.Time // zero when absent
	Expires time.Time // zero when absent
	Nonce   string
	Alg     Algorithm // "" when absent
	KeyID   string
	Tag     string
	Value   []byte // the signature bytes
}

// Covers reports whether the signature covers component c.
func (s *Signature) Covers(c *Component) bool {
	for i := range s.Components {
		if s.Components[i].sameAs(c) {
			return true
		}
	}
	return false
}

// Base returns the signature base of m for this signature.
func (s *Signature) Base(m *Message, fieldTypes map[string]sfv.Type) ([]byte, error) {
	return appendBase(nil, m, s.Components, s.Params, fieldTypes)
}

// ParseSignatures parses the Signature-Input and Signature fields of h. It returns
// ErrNoSignature when both are absent and ErrMalformed when only one is present, when
// either does not parse, or when an input has no signature of the same label.
// Signatures without an input are ignored.
func ParseSignatures(h http.Header) ([]Signature, error) {
	input, okIn := fieldValue(h, "signature-input")
	sig, okSig := fieldValue(h, "signature")
	switch {
	case !okIn && !okSig:
		return nil, ErrNoSignature
	case !okIn:
		return nil, fmt.Errorf("%w: Signature without Signature-Input", ErrMalformed)
	case !okSig:
		return nil, fmt.Errorf("%w: Signature-Input without Signature", ErrMalformed)
	}
	return ParseSignatureFields(input, sig)
}

// ParseSignatureFields parses combined Signature-Input and Signature field values.
func ParseSignatureFields(input, signature string) ([]Signature, error) {
	in, err := sfv.ParseDictionary(input)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature-Input: %v", ErrMalformed, err)
	}
	sigs, err := sfv.ParseDictionary(signature)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature: %v", ErrMalformed, err)
	}
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: empty Signature-Input", ErrMalformed)
	}
	if len(in) > maxSignatures {
		return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, maxSignatures)
	}
	out := make([]Signature, len(in))
	for i := range in {
		if err := parseOne(&out[i], &in[i], sigs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parseOne(s *Signature, in *sfv.DictMember, sigs sfv.Dictionary) error {
	s.Label = in.Key
	if !in.IsInnerList {
		return fmt.Errorf("%w: Signature-Input %q is not an inner list", ErrMalformed, in.Key)
	}
	if len(in.Items) > maxComponents {
		return fmt.Errorf("%w: %q: more than %d covered components", ErrMalformed, in.Key, maxComponents)
	}
	sv, ok := sigs.Get(in.Key)
	if !ok {
		return fmt.Errorf("%w: no Signature for label %q", ErrMalformed, in.Key)
	}
	if sv.IsInnerList || sv.Value.Kind != sfv.KindByteSequence || len(sv.Value.Bytes) == 0 {
		return fmt.Errorf("%w: Signature %q is not a byte sequence", ErrMalformed, in.Key)
	}
	s.Value = sv.Value.Bytes
	s.Components = make([]Component, len(in.Items))
	for j, it := range in.Items {
		c, err := componentFromItem(it)
		if err != nil {
			return fmt.Errorf("signature %q: %w", in.Key, err)
		}
		s.Components[j] = c
	}
	s.Params = in.Params
	for _, p := range in.Params {
		if err := s.setParam(p); err != nil {
			return err
		}
	}
	return nil
}

// setParam reads one signature parameter (RFC 9421 Section 2.3). Unknown parameters
// are kept (they are covered by @signature-params) but otherwise ignored.
func (s *Signature) setParam(p sfv.Param) error {
	v := p.Value
	bad := func(want string) error {
		return fmt.Errorf("%w: signature %q: parameter %s must be %s", ErrMalformed, s.Label, p.Key, want)
	}
	switch p.Key {
	case "created", "expires":
		if v.Kind != sfv.KindInteger || v.Int < 0 {
			return bad("a non-negative integer")
		}
		if p.Key == "created" {
			s.Created = time.Unix(v.Int, 0)
		} else {
			s.Expires = time.Unix(v.Int, 0)
		}
	case "nonce", "alg", "keyid", "tag":
		if v.Kind != sfv.KindString {
			return bad("a string")
		}
		switch p.Key {
		case "nonce":
			s.Nonce = v.Str
		case "alg":
			s.Alg = Algorithm(v.Str)
		case "keyid":
			s.KeyID = v.Str
		default:
			s.Tag = v.Str
		}
	}
	return nil
}
