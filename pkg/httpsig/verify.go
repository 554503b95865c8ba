package httpsig

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// DigestRequirement says when a Content-Digest must be covered and checked.
type DigestRequirement uint8

const (
	// DigestIfBody (the default) requires a covered, matching content-digest whenever
	// the message has a body.
	DigestIfBody DigestRequirement = iota
	// DigestAlways requires a covered, matching content-digest on every message.
	DigestAlways
	// DigestOptional never requires one. A covered content-digest is still checked.
	DigestOptional
)

// Policy defaults.
const (
	DefaultMaxAge    = 5 * time.Minute
	DefaultClockSkew = 30 * time.Second
)

// DefaultRequired are the components a signature must cover when Policy.Required is
// nil.
var DefaultRequired = []string{ComponentMethod, ComponentTargetURI}

// Policy is what a Verifier demands of a signature beyond being valid. The zero
// Policy is the strict default: cover @method and @target-uri, cover content-digest
// when there is a body, carry created no older than DefaultMaxAge (DefaultClockSkew
// tolerated), any supported algorithm.
type Policy struct {
	// Required lists component identifiers every accepted signature covers, in bare
	// or structured form ("@method", `"@query-param";name="id"`, "content-type").
	// nil means DefaultRequired; an empty non-nil slice requires none.
	Required []string
	// DigestRequired says when content-digest must be covered and match the body.
	DigestRequired DigestRequirement
	// DigestAlgorithms are the accepted Content-Digest algorithms (nil: sha-256 and
	// sha-512). Every accepted member present must match.
	DigestAlgorithms []DigestAlgorithm
	// Algorithms are the accepted signature algorithms (nil: all supported). The
	// key's algorithm decides; a signature's alg parameter must agree with it.
	Algorithms []Algorithm
	// MaxAge is the oldest created accepted (0: DefaultMaxAge; negative: no limit).
	MaxAge time.Duration
	// ClockSkew is tolerated on created (future) and expires (0: DefaultClockSkew;
	// negative: none).
	ClockSkew time.Duration
	// CreatedOptional accepts signatures without created (not recommended: the
	// age check and replay windows then rely on expires).
	CreatedOptional bool
	// RequireExpires rejects signatures without expires.
	RequireExpires bool
	// RequireNonce rejects signatures without nonce.
	RequireNonce bool
	// Tag, when set, selects signatures whose tag parameter equals it; others are
	// ignored.
	Tag string
	// Label, when set, selects the signature with that label only.
	Label string
	// StructuredFields adds field types for the `sf` parameter.
	StructuredFields map[string]sfv.Type
}

// maxAttempts bounds the signatures whose keys are tried per message.
const maxAttempts = 4

// Verifier verifies message signatures against a Policy. It is safe for concurrent
// use.
type Verifier struct {
	keys     KeyResolver
	p        Policy
	required []Component
	now      func() time.Time
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithClock injects the clock (default time.Now).
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier that finds keys with keys and enforces p.
func NewVerifier(keys KeyResolver, p Policy, opts ...VerifierOption) (*Verifier, error) {
	if keys == nil {
		return nil, errors.New("httpsig: nil key resolver")
	}
	v := &Verifier{keys: keys, p: p, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	if v.p.MaxAge == 0 {
		v.p.MaxAge = DefaultMaxAge
	}
	switch {
	case v.p.ClockSkew == 0:
		v.p.ClockSkew = DefaultClockSkew
	case v.p.ClockSkew < 0:
		v.p.ClockSkew = 0
	}
	req := p.Required
	if req == nil {
		req = DefaultRequired
	}
	for _, s := range req {
		c, err := ParseComponent(s)
		if err != nil {
			return nil, fmt.Errorf("httpsig: required component: %w", err)
		}
		v.required = append(v.required, c)
	}
	for _, a := range p.Algorithms {
		if !supported(a) {
			return nil, fmt.Errorf("httpsig: unsupported algorithm %q", a)
		}
	}
	for _, a := range p.DigestAlgorithms {
		if _, ok := digestOf(a, nil); !ok {
			return nil, fmt.Errorf("httpsig: unsupported digest algorithm %q", a)
		}
	}
	return v, nil
}

// Policy returns the effective policy (defaults applied).
func (v *Verifier) Policy() Policy { return v.p }

func supported(a Algorithm) bool {
	for _, x := range Algorithms {
		if x == a {
			return true
		}
	}
	return false
}

// Result describes the signature that verified.
type Result struct {
	Signature *Signature
	Key       *Key // the key that verified it
	// Base is the SHA-256 of the signature base, what was signed, for a signature
	// without a nonce (zero with one: the nonce identifies it). Every valid value of a
	// signature over it shares it (an ECDSA signature has two, s and n-s), so replay
	// protection keys on it rather than on the signature's bytes.
	Base [sha256.Size]byte
	// Others are the message's other selected signatures that verified too (a request
	// signed with an old and a new key): replay protection must record them as well,
	// or the request could be replayed with only one of them.
	Others []Result
}

// Verify finds a signature of m that satisfies the policy and verifies with a key for
// its keyid. It tries at most a few selected signatures and returns the first
// failure when none verifies. Errors wrap the package's sentinel errors.
func (v *Verifier) Verify(ctx context.Context, m *Message) (Result, error) {
	sigs, err := ParseSignatures(m.Header)
	if err != nil {
		return Result{}, err
	}
	var first error
	attempts := 0
	for i := range sigs {
		s := &sigs[i]
		if !v.selected(s) {
			continue
		}
		if attempts++; attempts > maxAttempts {
			break
		}
		k, base, err := v.check(ctx, m, s)
		if err == nil {
			return v.others(ctx, m, sigs[i+1:], attempts, Result{Signature: s, Key: k, Base: base}), nil
		}
		if first == nil {
			first = fmt.Errorf("signature %q: %w", s.Label, err)
		}
	}
	if first == nil {
		first = fmt.Errorf("%w: no signature with the required label or tag", ErrMissingComponent)
	}
	return Result{}, first
}

// selected reports whether s has the label and tag the policy asks for, if any.
func (v *Verifier) selected(s *Signature) bool {
	return (v.p.Label == "" || s.Label == v.p.Label) && (v.p.Tag == "" || s.Tag == v.p.Tag)
}

// others adds to res the selected signatures of rest that verify too, within the
// attempts left.
func (v *Verifier) others(ctx context.Context, m *Message, rest []Signature, attempts int, res Result) Result {
	for i := range rest {
		s := &rest[i]
		if !v.selected(s) {
			continue
		}
		if attempts++; attempts > maxAttempts {
			break
		}
		if k, base, err := v.check(ctx, m, s); err == nil {
			res.Others = append(res.Others, Result{Signature: s, Key: k, Base: base})
		}
	}
	return res
}

// check applies the policy to one signature and verifies it, returning the key and the
// hash of the signature base.
func (v *Verifier) check(ctx context.Context, m *Message, s *Signature) (*Key, [sha256.Size]byte, error) {
	var base [sha256.Size]byte
	if err := v.checkParams(s); err != nil {
		return nil, base, err
	}
	digest, err := v.checkCoverage(m, s)
	if err != nil {
		return nil, base, err
	}
	key, base, err := v.verifySignature(ctx, m, s)
	if err != nil {
		return nil, base, err
	}
	if digest {
		if err := v.checkDigest(m); err != nil {
			return nil, base, err
		}
	}
	return key, base, nil
}

// checkParams enforces the parameter and freshness rules.
func (v *Verifier) checkParams(s *Signature) error {
	switch {
	case s.Created.IsZero() && !v.p.CreatedOptional:
		return fmt.Errorf("%w: created", ErrMissingComponent)
	case s.Expires.IsZero() && v.p.RequireExpires:
		return fmt.Errorf("%w: expires", ErrMissingComponent)
	case s.Nonce == "" && v.p.RequireNonce:
		return fmt.Errorf("%w: nonce", ErrMissingComponent)
	case s.Alg != "" && !v.allowed(s.Alg):
		return fmt.Errorf("%w: algorithm %q not allowed", ErrBadSignature, s.Alg)
	}
	now, skew := v.now(), v.p.ClockSkew
	if !s.Created.IsZero() {
		if s.Created.After(now.Add(skew)) {
			return fmt.Errorf("%w: created in the future", ErrExpired)
		}
		if v.p.MaxAge > 0 && now.Sub(s.Created) > v.p.MaxAge+skew {
			return fmt.Errorf("%w: created too long ago", ErrExpired)
		}
	}
	if !s.Expires.IsZero() && now.After(s.Expires.Add(skew)) {
		return fmt.Errorf("%w: expires has passed", ErrExpired)
	}
	return nil
}

func (v *Verifier) allowed(a Algorithm) bool {
	if v.p.Algorithms == nil {
		return supported(a)
	}
	for _, x := range v.p.Algorithms {
		if x == a {
			return true
		}
	}
	return false
}

// checkCoverage enforces the required components and reports whether the signature
// covers content-digest (which must then be checked against the body).
func (v *Verifier) checkCoverage(m *Message, s *Signature) (digest bool, err error) {
	for i := range v.required {
		if !s.Covers(&v.required[i]) {
			return false, fmt.Errorf("%w: %s not covered", ErrMissingComponent, v.required[i].Name())
		}
	}
	for i := range s.Components {
		c := &s.Components[i]
		if c.Name() == "content-digest" && !c.req && !c.hasKey {
			digest = true
		}
	}
	if !digest && (v.p.DigestRequired == DigestAlways || (v.p.DigestRequired == DigestIfBody && m.hasBody())) {
		return false, fmt.Errorf("%w: content-digest not covered", ErrMissingComponent)
	}
	return digest, nil
}

func (v *Verifier) checkDigest(m *Message) error {
	switch {
	case m.BodyMissing:
		return ErrBodyMissing
	case m.BodyTruncated:
		return ErrBodyTruncated
	}
	field, _ := fieldValue(m.Header, "content-digest")
	return VerifyContentDigest(field, m.Body, v.p.DigestAlgorithms)
}

var basePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// verifySignature builds the signature base and tries every allowed key of the keyid;
// it returns the key that verified and the base's SHA-256.
func (v *Verifier) verifySignature(ctx context.Context, m *Message, s *Signature) (*Key, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if s.KeyID == "" {
		return nil, sum, fmt.Errorf("%w: no keyid", ErrUnknownKey)
	}
	keys, err := v.keys.ResolveKeys(ctx, s.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return nil, sum, err
		}
		return nil, sum, fmt.Errorf("resolve key: %w", err)
	}
	if len(keys) == 0 {
		return nil, sum, ErrUnknownKey
	}
	bp := basePool.Get().(*[]byte)
	base, err := appendBase((*bp)[:0], m, s.Components, s.Params, v.p.StructuredFields)
	defer releaseBase(bp, base)
	if err != nil {
		return nil, sum, err
	}
	for _, k := range keys {
		if (s.Alg != "" && k.alg != s.Alg) || !v.allowed(k.alg) {
			continue
		}
		if k.Verify(base, s.Value) {
			if s.Nonce == "" {
				sum = sha256.Sum256(base)
			}
			return k, sum, nil
		}
	}
	return nil, sum, ErrBadSignature
}

// releaseBase returns a base buffer to the pool unless it grew too large to keep.
func releaseBase(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	*bp = b[:0]
	basePool.Put(bp)
}
