package hmac

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// buildRFC9421 prepares the keys, identities and verifier of the RFC 9421 scheme.
func (a *Authenticator) buildRFC9421(o *Options) error {
	if err := validateClients(o.Clients); err != nil {
		return err
	}
	var (
		keys []*httpsig.Key
		errs []error
	)
	a.identities = make(map[string]*engine.Identity)
	for i := range o.Clients {
		c := &o.Clients[i]
		for j := range c.Keys {
			k, err := rfc9421Key(&c.Keys[j])
			if err != nil {
				errs = append(errs, fmt.Errorf("clients[%d].keys[%d]: %w", i, j, err))
				continue
			}
			keys = append(keys, k)
			if _, ok := a.identities[k.ID()]; !ok {
				a.identities[k.ID()] = identity(c, k.ID())
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	v, err := httpsig.NewVerifier(httpsig.NewKeySet(keys...), o.Policy, httpsig.WithClock(o.Now))
	if err != nil {
		return err
	}
	a.verifier = v
	p := v.Policy()
	if a.replay != nil && p.MaxAge < 0 && !p.RequireExpires {
		return errors.New("replay detection needs a bounded signature lifetime: set a max age, require expires, or disable replay detection")
	}
	return nil
}

func rfc9421Key(k *Key) (*httpsig.Key, error) {
	alg := k.Algorithm
	if alg == "" {
		alg = httpsig.HMACSHA256
	}
	if alg == httpsig.HMACSHA256 {
		if k.PublicKey != nil {
			return nil, errors.New("hmac-sha256 takes a secret, not a public key")
		}
		return httpsig.NewHMACKey(k.ID, k.Secret)
	}
	if len(k.Secret) > 0 {
		return nil, fmt.Errorf("%s takes a public key, not a secret", alg)
	}
	return httpsig.NewPublicKey(k.ID, alg, k.PublicKey)
}

func (a *Authenticator) authenticateRFC9421(ctx context.Context, r *engine.Request) (*engine.Identity, error) {
	_, hasInput := r.Header["Signature-Input"]
	_, hasSig := r.Header["Signature"]
	if !hasInput && !hasSig {
		return nil, engine.ErrNoCredentials
	}
	m := httpsig.Message{
		Method: r.Method, Scheme: r.Scheme, Authority: r.Host,
		RawPath: r.RawPath, RawQuery: r.RawQuery, Header: r.Header,
		Body: r.Body, BodyMissing: !r.HasBody, BodyTruncated: r.BodyTruncated,
	}
	res, err := a.verifier.Verify(ctx, &m)
	if err != nil {
		if d, ok := a.denialFor(err); ok {
			return nil, d
		}
		return nil, fmt.Errorf("hmac %s: %w", a.name, err)
	}
	id := a.identities[res.Key.ID()]
	if id == nil {
		return nil, a.deny(rUnknownKey)
	}
	// Every signature of the request that verified is recorded, so it cannot be
	// replayed with only one of them (one first seen makes it a replay).
	now := a.now()
	if err := a.remember(ctx, a.replayKey(&res), a.signatureTTL(res.Signature, now)); err != nil {
		return nil, err
	}
	for i := range res.Others {
		o := &res.Others[i]
		if err := a.remember(ctx, a.replayKey(o), a.signatureTTL(o.Signature, now)); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// replayKey identifies a verified signature for replay detection: keyid and nonce
// when there is a nonce (a nonce is single-use whatever it signs), else keyid, created
// and the hash of what was signed (the signature base), not the signature's bytes: an
// ECDSA signature has a second valid value (s and n-s) over the same base, which would
// otherwise pass for a new request. It is hashed to a fixed length to bound the
// store's memory.
func (a *Authenticator) replayKey(res *httpsig.Result) string {
	s := res.Signature
	h := sha256.New()
	h.Write([]byte(s.KeyID))
	if s.Nonce != "" {
		h.Write([]byte{0, 'n'})
		h.Write([]byte(s.Nonce))
	} else {
		var ts [9]byte
		binary.BigEndian.PutUint64(ts[1:], uint64(s.Created.Unix()))
		h.Write(ts[:])
		h.Write(res.Base[:])
	}
	var sum [sha256.Size]byte
	return a.name + ":sig:" + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0]))
}

// signatureTTL is how long the signature stays acceptable from now: until created
// exceeds the max age or expires passes (with skew), whichever is first.
func (a *Authenticator) signatureTTL(s *httpsig.Signature, now time.Time) time.Duration {
	p := a.verifier.Policy()
	var deadline time.Time
	if p.MaxAge > 0 && !s.Created.IsZero() {
		deadline = s.Created.Add(p.MaxAge + p.ClockSkew)
	}
	if !s.Expires.IsZero() {
		if e := s.Expires.Add(p.ClockSkew); deadline.IsZero() || e.Before(deadline) {
			deadline = e
		}
	}
	if deadline.IsZero() {
		// Neither created nor expires (Policy.CreatedOptional): the longest window a
		// signature of this policy can be accepted in.
		return p.MaxAge + 2*p.ClockSkew
	}
	return deadline.Sub(now)
}
