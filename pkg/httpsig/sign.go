package httpsig

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// NoDigest, as SignerOptions.Digest, disables Content-Digest.
const NoDigest DigestAlgorithm = "none"

// Signer defaults.
const (
	DefaultLabel   = "sig1"
	DefaultMaxBody = 10 << 20
)

// DefaultSignComponents are the components a Signer covers when
// SignerOptions.Components is nil (content-digest is added when a digest is sent).
var DefaultSignComponents = []string{ComponentMethod, ComponentTargetURI}

// SignerOptions configure a Signer. The zero value signs @method, @target-uri and,
// for a message with a body, a sha-256 content-digest, with created, keyid and a
// random nonce, under the label "sig1".
type SignerOptions struct {
	// Label is the signature's dictionary key (default DefaultLabel).
	Label string
	// Components are the covered component identifiers in order, bare or
	// structured (nil: DefaultSignComponents). "content-digest" is appended when a
	// digest is computed and not listed.
	Components []string
	// Digest is the Content-Digest algorithm (default sha-256; NoDigest: none). The
	// digest is computed and the header set when the body is non-empty or
	// Components lists content-digest.
	Digest DigestAlgorithm
	// Expires, when positive, adds expires = created + Expires.
	Expires time.Duration
	// NoNonce omits the nonce parameter. Verifiers then detect replays by
	// keyid + created + signature.
	NoNonce bool
	// Nonce generates nonces (default: 16 random bytes, base64url).
	Nonce func() (string, error)
	// IncludeAlg adds the alg parameter.
	IncludeAlg bool
	// Tag, when set, adds the tag parameter.
	Tag string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxBody bounds the body SignRequest reads (default DefaultMaxBody).
	MaxBody int64
	// StructuredFields adds field types for the `sf` parameter.
	StructuredFields map[string]sfv.Type
}

// Signer signs messages with one key. It is safe for concurrent use.
type Signer struct {
	key       *Key
	o         SignerOptions
	comps     []Component
	hasDigest bool // Components lists content-digest
}

// NewSigner returns a Signer for key (which must be able to sign).
func NewSigner(key *Key, o SignerOptions) (*Signer, error) {
	if key == nil || !key.CanSign() {
		return nil, errors.New("httpsig: signer needs a key with a secret or private key")
	}
	if o.Label == "" {
		o.Label = DefaultLabel
	}
	if !sfv.IsKey(o.Label) {
		return nil, fmt.Errorf("httpsig: label %q is not a structured field key", o.Label)
	}
	if o.Digest == "" {
		o.Digest = DigestSHA256
	}
	if _, ok := digestOf(o.Digest, nil); !ok && o.Digest != NoDigest {
		return nil, fmt.Errorf("httpsig: unsupported digest algorithm %q", o.Digest)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Nonce == nil {
		o.Nonce = randomNonce
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	comps := o.Components
	if comps == nil {
		comps = DefaultSignComponents
	}
	s := &Signer{key: key, o: o}
	for _, c := range comps {
		pc, err := ParseComponent(c)
		if err != nil {
			return nil, fmt.Errorf("httpsig: signer: %w", err)
		}
		if pc.Name() == "content-digest" {
			s.hasDigest = true
		}
		s.comps = append(s.comps, pc)
	}
	return s, nil
}

func randomNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Sign signs m and adds the Content-Digest (when computed), Signature-Input and
// Signature fields to m.Header, which must not be nil. A signature already present
// with the same label is an error.
func (s *Signer) Sign(m *Message) error {
	if m.Header == nil {
		return errors.New("httpsig: sign: nil header")
	}
	if sigs, err := ParseSignatures(m.Header); err == nil {
		for i := range sigs {
			if sigs[i].Label == s.o.Label {
				return fmt.Errorf("httpsig: sign: label %q already present", s.o.Label)
			}
		}
	}
	comps := s.comps
	if s.o.Digest != NoDigest && (len(m.Body) > 0 || s.hasDigest) {
		d, err := ContentDigest(s.o.Digest, m.Body)
		if err != nil {
			return fmt.Errorf("httpsig: sign: %w", err)
		}
		m.Header.Set("Content-Digest", d)
		if !s.hasDigest {
			dc, _ := ParseComponent("content-digest")
			comps = append(comps[:len(comps):len(comps)], dc)
		}
	}
	params, err := s.params()
	if err != nil {
		return err
	}
	base, err := appendBase(nil, m, comps, params, s.o.StructuredFields)
	if err != nil {
		return fmt.Errorf("httpsig: sign: %w", err)
	}
	sig, err := s.key.Sign(base)
	if err != nil {
		return fmt.Errorf("httpsig: sign: %w", err)
	}
	input := append([]byte(s.o.Label), '=')
	if input, err = appendSignatureParams(input, comps, params); err != nil {
		return fmt.Errorf("httpsig: sign: %w", err)
	}
	out := append([]byte(s.o.Label), '=')
	out, _ = sfv.AppendValue(out, sfv.ByteSequence(sig))
	m.Header.Add("Signature-Input", string(input))
	m.Header.Add("Signature", string(out))
	return nil
}

// params returns the signature parameters in a fixed order: created, expires, keyid,
// alg, nonce, tag.
func (s *Signer) params() (sfv.Params, error) {
	now := s.o.Now()
	ps := sfv.Params{{Key: "created", Value: sfv.Integer(now.Unix())}}
	if s.o.Expires > 0 {
		ps = append(ps, sfv.Param{Key: "expires", Value: sfv.Integer(now.Add(s.o.Expires).Unix())})
	}
	ps = append(ps, sfv.Param{Key: "keyid", Value: sfv.String(s.key.id)})
	if s.o.IncludeAlg {
		ps = append(ps, sfv.Param{Key: "alg", Value: sfv.String(string(s.key.alg))})
	}
	if !s.o.NoNonce {
		n, err := s.o.Nonce()
		if err != nil {
			return nil, fmt.Errorf("httpsig: sign: %w", err)
		}
		ps = append(ps, sfv.Param{Key: "nonce", Value: sfv.String(n)})
	}
	if s.o.Tag != "" {
		ps = append(ps, sfv.Param{Key: "tag", Value: sfv.String(s.o.Tag)})
	}
	return ps, nil
}

// SignRequest signs an outgoing request in place. It reads the body (at most
// MaxBody bytes) to compute the Content-Digest and replaces it with a re-readable
// copy (setting GetBody and ContentLength).
func (s *Signer) SignRequest(r *http.Request) error {
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	return s.Sign(MessageFromRequest(r, body))
}

func (s *Signer) readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	defer r.Body.Close()
	body, err := io.ReadAll(io.LimitReader(r.Body, s.o.MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("httpsig: read body: %w", err)
	}
	if int64(len(body)) > s.o.MaxBody {
		return nil, fmt.Errorf("httpsig: body larger than %d bytes", s.o.MaxBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	return body, nil
}

// Transport returns an http.RoundTripper that signs every request with s before
// passing it to base (nil: http.DefaultTransport). The caller's request is not
// modified; its body is consumed and closed.
func (s *Signer) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{s: s, base: base}
}

type transport struct {
	s    *Signer
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	if err := t.s.SignRequest(r2); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(r2)
}
