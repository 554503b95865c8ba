package jwt

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Authenticator verifies the JWT bearer tokens of one provider. It is safe for
// concurrent use. With a remote key source it owns a background fetcher: call Start
// before serving and Close when the route table holding it is replaced.
type Authenticator struct {
	opts    Options
	algs    AlgSet
	static  *KeySet
	remote  *RemoteKeys
	rules   []claimRule
	deny    denyLists
	denials *denials
	cache   *tokenCache
	flight  singleflight.Group
	// verifications counts full verifications (cache misses), for tests and metrics.
	verifications atomic.Uint64
}

var _ engine.Authenticator = (*Authenticator)(nil)

// New validates o, applies the defaults documented on Options and loads static keys.
// Remote keys are fetched once Start is called.
func New(o Options) (*Authenticator, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Authenticator{opts: o, algs: AsymmetricAlgs, rules: compileRules(o.Claims)}
	if len(o.Algorithms) > 0 {
		if a.algs, err = ParseAlgSet(o.Algorithms); err != nil {
			return nil, fmt.Errorf("jwt provider %q: %w", o.Name, err)
		}
	}
	if err := a.loadKeys(); err != nil {
		return nil, fmt.Errorf("jwt provider %q: %w", o.Name, err)
	}
	extra := make([]*VerifyError, len(a.rules))
	for i := range a.rules {
		extra[i] = a.rules[i].fail
	}
	a.denials = newDenials(o.Realm, extra)
	a.deny = newDenyLists(o.DenyJTIs, o.DenySubjects, o.Revocation)
	a.cache = newTokenCache(o.CacheSize)
	return a, nil
}

// loadKeys reads static keys or prepares the remote fetcher.
func (a *Authenticator) loadKeys() error {
	k := &a.opts.Keys
	if k.URL != "" || k.Discovery {
		r, err := NewRemoteKeys(a.opts.Name, k.URL, a.discoveryIssuer(), k.Remote, a.opts.Now)
		if err != nil {
			return err
		}
		r.onSwap = func() { a.cache.dropRetired() }
		a.remote = r
		return nil
	}
	data := k.JWKS
	if k.File != "" {
		var err error
		if data, err = os.ReadFile(k.File); err != nil {
			return fmt.Errorf("read jwks file: %w", err)
		}
	}
	set, err := ParseKeySet(data)
	if err != nil {
		return err
	}
	if set.Supported()&a.algs == 0 {
		return fmt.Errorf("no allowed algorithm (%s) fits the keys (%s); HMAC algorithms must be listed explicitly",
			a.algs, set.Supported())
	}
	a.static = set
	return nil
}

func (a *Authenticator) discoveryIssuer() string {
	if a.opts.Keys.Discovery {
		return a.opts.Issuer
	}
	return ""
}

// Name returns the provider name.
func (a *Authenticator) Name() string { return a.opts.Name }

// CredentialHeaders returns the lowercase request headers the token sources read, for
// engine.Pipeline.HideHeaders.
func (a *Authenticator) CredentialHeaders() []string { return credentialHeaders(a.opts.Sources) }

// QueryParams returns the query parameters the token sources read, for
// engine.Pipeline.StripQuery.
func (a *Authenticator) QueryParams() []string { return queryParams(a.opts.Sources) }

// Start starts the remote key fetcher (a no-op for static keys). With
// RemoteOptions.WaitFirstFetch it waits for the first fetch and returns its error.
func (a *Authenticator) Start(ctx context.Context) error {
	if a.remote == nil {
		return nil
	}
	return a.remote.Start(ctx)
}

// Close stops the remote key fetcher and waits for it to exit.
func (a *Authenticator) Close() error {
	if a.remote == nil {
		return nil
	}
	return a.remote.Close()
}

// Ready reports whether the provider has keys.
func (a *Authenticator) Ready() bool { return a.keySet() != nil }

// Status reports the key source state for readiness detail.
func (a *Authenticator) Status() KeyStatus {
	if a.remote == nil {
		return KeyStatus{Keys: a.static.Len()}
	}
	return a.remote.Status()
}

func (a *Authenticator) keySet() *KeySet {
	if a.remote != nil {
		return a.remote.Current()
	}
	return a.static
}

// Authenticate implements engine.Authenticator. It returns engine.ErrNoCredentials
// when no source carries a JWT-shaped token, a 401 *engine.Denial with an RFC 6750
// challenge when the token is invalid, and a plain error when the revocation checker
// fails.
func (a *Authenticator) Authenticate(ctx context.Context, r *engine.Request) (*engine.Identity, error) {
	tok, err := extract(a.opts.Sources, r)
	if err != nil {
		if errors.Is(err, engine.ErrNoCredentials) {
			return nil, err
		}
		return nil, a.denials.denial(err)
	}
	if !jwtShaped(tok) {
		return nil, engine.ErrNoCredentials
	}
	if len(tok) > a.opts.MaxTokenSize {
		return nil, a.denials.denial(errTooLarge)
	}
	v, err := a.verifyCached(ctx, tok)
	if err != nil {
		if err == errOtherIssuer {
			return nil, engine.ErrNoCredentials
		}
		return nil, a.denials.denial(err)
	}
	return v.id, nil
}

// errOtherIssuer: the token names another issuer and the provider yields it.
var errOtherIssuer = errors.New("token of another issuer")

// Check verifies token fully, bypassing the cache, and returns the identity or the
// failure (a *VerifyError names the rule). It is meant for tools ("token inspect").
func (a *Authenticator) Check(ctx context.Context, token string) (*engine.Identity, error) {
	if len(token) > a.opts.MaxTokenSize {
		return nil, errTooLarge
	}
	v, err := a.verify(ctx, token, a.opts.Now())
	if err != nil {
		return nil, err
	}
	if err := a.deny.check(ctx, &v.reg); err != nil {
		return nil, err
	}
	return v.id, nil
}

// verifyCached serves a token from the cache or verifies it once however many
// requests carry it concurrently. Time bounds and revocation are checked every time.
func (a *Authenticator) verifyCached(ctx context.Context, tok string) (*verified, error) {
	now := a.opts.Now()
	key := hashToken(tok)
	v := a.cache.get(&key)
	if v != nil && v.key.Retired() {
		a.cache.remove(&key)
		v = nil
	}
	if v == nil {
		// The verification is shared by every request carrying this token, so it
		// runs without the first caller's cancellation (an unknown-kid refresh is
		// bounded by the fetch timeout) and each caller waits under its own context.
		flight := a.flight.DoChan(string(key[:]), func() (any, error) {
			// A flight that ended between our cache miss and this call has
			// already cached the token: use it rather than verify again.
			if v := a.cache.get(&key); v != nil && !v.key.Retired() {
				return v, nil
			}
			v, err := a.verify(context.WithoutCancel(ctx), tok, now)
			if err == nil {
				a.cache.put(&key, v, now)
			}
			return v, err
		})
		select {
		case out := <-flight:
			if out.Err != nil {
				return nil, out.Err
			}
			v = out.Val.(*verified)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := checkTimes(&v.reg, now, a.opts.ClockSkew, a.opts.AllowMissingExp); err != nil {
		return nil, err
	}
	if err := a.deny.check(ctx, &v.reg); err != nil {
		return nil, err
	}
	return v, nil
}

// tokenBufs holds scratch buffers for hashing tokens without allocating.
var tokenBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// hashToken returns the SHA-256 of tok.
func hashToken(tok string) tokenKey {
	bp := tokenBufs.Get().(*[]byte)
	b := append((*bp)[:0], tok...)
	k := tokenKey(sha256.Sum256(b))
	*bp = b[:0]
	tokenBufs.Put(bp)
	return k
}

// verify runs the whole verification of one token: parse, key, signature, claims.
func (a *Authenticator) verify(ctx context.Context, tok string, now time.Time) (*verified, error) {
	a.verifications.Add(1)
	c, err := ParseCompact(tok)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if a.opts.YieldOtherIssuers {
		// Routing only: the issuer is checked again after the signature verifies.
		if claims, err = decodeClaims(c.Payload); err != nil {
			return nil, err
		}
		if iss, _ := claims["iss"].(string); iss != a.opts.Issuer {
			return nil, errOtherIssuer
		}
	}
	set := a.keySet()
	if set == nil {
		if a.remote == nil || !a.remote.refreshEarly(ctx) || a.keySet() == nil {
			return nil, ErrNoKeys
		}
		set = a.keySet()
	}
	k, err := set.verify(c, a.algs)
	if errors.Is(err, errUnknownKid) && a.remote != nil && a.remote.refreshEarly(ctx) {
		if next := a.keySet(); next != set {
			k, err = next.verify(c, a.algs)
		}
	}
	if err != nil {
		return nil, err
	}
	if claims == nil {
		if claims, err = decodeClaims(c.Payload); err != nil {
			return nil, err
		}
	}
	return a.validate(c, claims, k, now)
}

// decodeClaims parses the payload strictly.
func decodeClaims(payload []byte) (map[string]any, error) {
	claims, err := parseJSONObject(payload)
	if err != nil {
		if errors.Is(err, errJSONDuplicate) {
			return nil, errDuplicateKey
		}
		return nil, errPayloadJSON
	}
	return claims, nil
}

// validate checks the claims of a token whose signature verified.
func (a *Authenticator) validate(c *Compact, claims map[string]any, k *Key, now time.Time) (*verified, error) {
	reg, err := readRegistered(claims)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(&reg, now, a.opts.ClockSkew, a.opts.AllowMissingExp); err != nil {
		return nil, err
	}
	if a.opts.Issuer != "" && reg.iss != a.opts.Issuer {
		return nil, errIssuer
	}
	if len(a.opts.Audiences) > 0 {
		if err := checkAudience(claims["aud"], a.opts.Audiences); err != nil {
			return nil, err
		}
	}
	if sub, ok := lookup(claims, a.opts.SubjectClaim).(string); ok && sub != "" {
		reg.sub = sub
	} else {
		return nil, errSubject
	}
	for i := range a.rules {
		if err := a.rules[i].check(claims); err != nil {
			return nil, err
		}
	}
	return &verified{id: a.newIdentity(claims, &reg, k, c.PayloadSegment), key: k, reg: reg}, nil
}
