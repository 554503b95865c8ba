package filters

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/introspect"
	"github.com/portcullis/portcullis/filters/jwt"
	"github.com/portcullis/portcullis/pkg/engine"
)

// tokenProviders holds the JWT and introspection authenticators of one Build: a
// provider referenced by several policies is built (and its keys fetched) once. A JWT
// provider that yields tokens of other issuers in one any-of list and rejects them in
// another is two authenticators, since YieldOtherIssuers is fixed at construction.
type tokenProviders struct {
	jwt        map[jwtKey]*jwt.Authenticator
	introspect map[string]*introspect.Authenticator
	yield      map[*config.Stage]bool // jwt stages followed by a jwt stage reading the same token
}

type jwtKey struct {
	name  string
	yield bool
}

func (b *builder) tokens() *tokenProviders {
	if b.tokenProviders == nil {
		t := &tokenProviders{jwt: map[jwtKey]*jwt.Authenticator{},
			introspect: map[string]*introspect.Authenticator{}, yield: map[*config.Stage]bool{}}
		for _, name := range b.doc.PolicyNames() {
			t.markYielding(b.doc, b.doc.Policies[name])
		}
		b.tokenProviders = t
	}
	return b.tokenProviders
}

// markYielding records the jwt stages of an any-of list that must pass tokens of
// other issuers on: those followed by a jwt stage that reads the same token source.
func (t *tokenProviders) markYielding(doc *config.Document, pol *config.Policy) {
	if pol.AuthMode != config.AuthModeAny {
		return
	}
	stages := pol.Authenticate
	for i := range stages {
		a, ok := jwtProviderOf(doc, &stages[i])
		if !ok {
			continue
		}
		for j := i + 1; j < len(stages); j++ {
			if b, ok := jwtProviderOf(doc, &stages[j]); ok && sharesSource(a, b) {
				t.yield[&stages[i]] = true
				break
			}
		}
	}
}

func jwtProviderOf(doc *config.Document, st *config.Stage) (*config.JWTProvider, bool) {
	spec, ok := st.Spec.(*config.JWTStage)
	if !ok {
		return nil, false
	}
	return doc.Providers.JWT.ByName(spec.Provider)
}

// sharesSource reports whether two providers can read the same token.
func sharesSource(a, b *config.JWTProvider) bool {
	as, bs := sourcesOf(a), sourcesOf(b)
	for _, s := range as {
		if slices.Contains(bs, s) {
			return true
		}
	}
	return false
}

func sourcesOf(p *config.JWTProvider) []config.TokenSource {
	if len(p.Sources) == 0 {
		return []config.TokenSource{{Bearer: true}}
	}
	out := make([]config.TokenSource, len(p.Sources))
	for i, s := range p.Sources {
		s.Prefix = "" // a prefix does not change which header is read
		out[i] = s
	}
	return out
}

// buildJWT compiles {jwt: NAME}. The token's header is hidden from the upstream
// unless the provider forwards it; a query parameter source is always stripped.
func buildJWT(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	name := st.Spec.(*config.JWTStage).Provider
	prov, ok := b.doc.Providers.JWT.ByName(name)
	if !ok {
		return nil, nil, fmt.Errorf("unknown jwt provider %q", name)
	}
	yield := b.tokens().yield[st]
	if yield && prov.Issuer == "" {
		return nil, nil, fmt.Errorf("jwt provider %q needs an issuer: a later jwt stage of this any list reads the same token, "+
			"so tokens of other issuers must pass on to it", name)
	}
	a, err := b.jwtAuthenticator(prov, yield)
	if err != nil {
		return nil, nil, err
	}
	p.StripQuery = append(p.StripQuery, a.QueryParams()...)
	if !prov.Forward {
		p.HideHeaders = append(p.HideHeaders, a.CredentialHeaders()...)
	}
	// An absolute claim header is not covered by the identity prefix's stripping: drop
	// inbound copies so a missing claim cannot be spoofed.
	for _, ref := range prov.ClaimHeaders {
		if ref[0] == '/' {
			p.HideHeaders = append(p.HideHeaders, config.ClaimHeader(ref, ""))
		}
	}
	if len(prov.PayloadHeader) > 0 && prov.PayloadHeader[0] == '/' {
		p.HideHeaders = append(p.HideHeaders, config.ClaimHeader(prov.PayloadHeader, ""))
	}
	p.Challenges = append(p.Challenges, bearerChallenge(name))
	return nil, a, nil
}

func bearerChallenge(realm string) string { return `Bearer realm="` + realm + `"` }

// jwtAuthenticator returns the Build's authenticator for prov, creating and starting
// it on first use. Its fetcher stops when the route table is closed.
func (b *builder) jwtAuthenticator(prov *config.JWTProvider, yield bool) (*jwt.Authenticator, error) {
	t := b.tokens()
	key := jwtKey{prov.Name, yield}
	if a := t.jwt[key]; a != nil {
		return a, nil
	}
	opts, err := JWTOptions(b.doc, prov, b.deps)
	if err != nil {
		return nil, fmt.Errorf("jwt provider %q: %w", prov.Name, err)
	}
	opts.YieldOtherIssuers = yield
	a, err := jwt.New(opts)
	if err != nil {
		return nil, err
	}
	t.jwt[key] = a
	ctx, cancel := context.WithCancel(context.Background())
	b.closer = append(b.closer, closerFunc(func() error { cancel(); return a.Close() }))
	if prov.Keys.Remote() {
		name := "jwks " + prov.Name
		if yield {
			name += " (yielding)"
		}
		b.checks = append(b.checks, Check{Name: name, Check: func() error { return keyStatus(a.Status()) }})
	}
	if !b.deps.Offline {
		// A failed first fetch (wait_first_fetch) is not a load error: the fetcher
		// keeps retrying and readiness reports it until keys arrive.
		_ = a.Start(ctx)
	}
	return a, nil
}

// keyStatus is the readiness of a remote key source: ready while a key set is loaded,
// even when the latest refresh failed (the last good set stays in use).
func keyStatus(st jwt.KeyStatus) error {
	switch {
	case st.Keys > 0:
		return nil
	case st.LastError != nil:
		return fmt.Errorf("no keys: last fetch failed: %w", st.LastError)
	case st.LastAttempt.IsZero():
		return errors.New("no keys: first fetch pending")
	}
	return errors.New("no keys: the key set is empty")
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// JWTOptions translates a provider into jwt.Options (without YieldOtherIssuers, which
// depends on the policy). Relative files are read from the document's directory.
func JWTOptions(doc *config.Document, prov *config.JWTProvider, deps Deps) (jwt.Options, error) {
	o := jwt.Options{
		Name: prov.Name, Issuer: prov.Issuer, Audiences: prov.Audiences, Algorithms: prov.Algorithms,
		ClockSkew: orNone(prov.ClockSkew), MaxTokenSize: prov.MaxTokenSize, AllowMissingExp: prov.AllowMissingExp,
		SubjectClaim: prov.SubjectClaim, ScopeClaims: prov.ScopeClaims,
		DenyJTIs: prov.DenyJTIs, DenySubjects: prov.DenySubjects, CacheSize: prov.CacheSize, Now: deps.Now,
		Keys: jwt.KeysOptions{JWKS: []byte(prov.Keys.JWKS), File: resolvePath(doc, prov.Keys.File),
			URL: prov.Keys.URL, Discovery: prov.Keys.Discovery},
	}
	if o.CacheSize == 0 {
		o.CacheSize = -1
	}
	for _, c := range prov.Claims {
		o.Claims = append(o.Claims, jwt.ClaimRule{Claim: c.Path, Equals: c.Equals, OneOf: c.OneOf, Contains: c.Contains})
	}
	for _, s := range prov.Sources {
		o.Sources = append(o.Sources, tokenSource(s))
	}
	prefix := doc.Identity.HeaderPrefix
	claims := make([]string, 0, len(prov.ClaimHeaders))
	for c := range prov.ClaimHeaders {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for _, c := range claims {
		o.ClaimHeaders = append(o.ClaimHeaders, jwt.ClaimHeader{Claim: c, Header: config.ClaimHeader(prov.ClaimHeaders[c], prefix)})
	}
	if prov.PayloadHeader != "" {
		o.PayloadHeader = config.ClaimHeader(prov.PayloadHeader, prefix)
	}
	if deps.Store != nil {
		o.Revocation = storeRevocation{bans: deps.Store, provider: prov.Name}
	}
	r := prov.Remote
	o.Keys.Remote = jwt.RemoteOptions{MinRefresh: r.MinRefresh, MaxRefresh: r.MaxRefresh,
		UnknownKIDInterval: r.UnknownKIDInterval, Timeout: r.Timeout, MaxResponseBytes: r.MaxResponseBytes,
		WaitFirstFetch: r.WaitFirstFetch, FirstFetchTimeout: r.FirstFetchTimeout, AllowHTTP: r.AllowHTTP,
		OnFetch: deps.OnKeyFetch}
	if r.CAFile != "" && prov.Keys.Remote() {
		pem, err := os.ReadFile(resolvePath(doc, r.CAFile))
		if err != nil {
			return o, fmt.Errorf("remote.ca_file: %w", err)
		}
		o.Keys.Remote.CAPEM = pem
	}
	return o, nil
}

func tokenSource(s config.TokenSource) jwt.Source {
	switch {
	case s.Header != "":
		return jwt.Source{Kind: jwt.FromHeader, Name: s.Header, Prefix: s.Prefix}
	case s.Cookie != "":
		return jwt.Source{Kind: jwt.FromCookie, Name: s.Cookie}
	case s.Query != "":
		return jwt.Source{Kind: jwt.FromQuery, Name: s.Query}
	}
	return jwt.Source{Kind: jwt.FromBearer}
}

// orNone maps a configured zero duration ("none") to the library's negative "none".
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// resolvePath anchors a relative path at the document's directory.
func resolvePath(doc *config.Document, p string) string {
	if p == "" || filepath.IsAbs(p) || doc.Source == "" {
		return p
	}
	return filepath.Join(filepath.Dir(doc.Source), p)
}

// buildIntrospection compiles {introspection: NAME}.
func buildIntrospection(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	name := st.Spec.(*config.IntrospectionStage).Provider
	prov, ok := b.doc.Providers.Introspection.ByName(name)
	if !ok {
		return nil, nil, fmt.Errorf("unknown introspection provider %q", name)
	}
	t := b.tokens()
	a := t.introspect[name]
	if a == nil {
		opts, err := IntrospectionOptions(b.doc, prov, b.deps)
		if err != nil {
			return nil, nil, fmt.Errorf("introspection provider %q: %w", name, err)
		}
		if a, err = introspect.New(opts); err != nil {
			return nil, nil, err
		}
		t.introspect[name] = a
		b.closer = append(b.closer, a)
	}
	if !prov.Forward {
		p.HideHeaders = append(p.HideHeaders, a.CredentialHeaders()...)
	}
	p.Challenges = append(p.Challenges, bearerChallenge(name))
	return nil, a, nil
}

// IntrospectionOptions translates a provider into introspect.Options, resolving the
// client secret (never logged) and the CA file.
func IntrospectionOptions(doc *config.Document, prov *config.IntrospectionProvider, deps Deps) (introspect.Options, error) {
	o := introspect.Options{Name: prov.Name, Endpoint: prov.Endpoint, ClientID: prov.ClientID,
		Issuer: prov.Issuer, Audiences: prov.Audiences, RequiredScopes: prov.RequiredScopes,
		CacheTTL: orNone(prov.CacheTTL), NegativeTTL: orNone(prov.NegativeTTL), Timeout: prov.Timeout,
		AllowHTTP: prov.AllowHTTP, Now: deps.Now}
	if !prov.ClientSecret.IsZero() {
		secret, err := prov.ClientSecret.Resolve()
		if err != nil {
			return o, fmt.Errorf("client_secret: %w", err)
		}
		o.ClientSecret = secret
	}
	if prov.CAFile != "" {
		pem, err := os.ReadFile(resolvePath(doc, prov.CAFile))
		if err != nil {
			return o, fmt.Errorf("ca_file: %w", err)
		}
		o.CAPEM = pem
	}
	return o, nil
}

// Revocation keys in the shared store's ban list. A ban of one of these keys (for at
// least the token's remaining lifetime) revokes on every replica that shares the store.
const revokedPrefix = "revoked:jwt:"

// RevokedJTIKey is the ban-list key that revokes the token with this jti of provider.
func RevokedJTIKey(provider, jti string) string { return revokedPrefix + provider + ":jti:" + jti }

// RevokedSubjectKey is the ban-list key that revokes every token of subject of provider.
func RevokedSubjectKey(provider, subject string) string {
	return revokedPrefix + provider + ":sub:" + subject
}

// banLookup is the part of store.BanList revocation needs.
type banLookup interface {
	Banned(ctx context.Context, key string) (bool, time.Duration, error)
}

// storeRevocation checks the shared store's ban list on every request (cache hits
// included): RevokedJTIKey when the token has a jti, then RevokedSubjectKey.
type storeRevocation struct {
	bans     banLookup
	provider string
}

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// Revoked implements jwt.RevocationChecker without allocating: keys are built in a
// pooled buffer (the store contract forbids retaining a key after the call).
func (s storeRevocation) Revoked(ctx context.Context, jti, subject string) (bool, error) {
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	check := func(kind, v string) (bool, error) {
		b := append(append(append(append((*bp)[:0], revokedPrefix...), s.provider...), kind...), v...)
		*bp = b
		banned, _, err := s.bans.Banned(ctx, unsafe.String(unsafe.SliceData(b), len(b)))
		return banned, err
	}
	if jti != "" {
		if banned, err := check(":jti:", jti); banned || err != nil {
			return banned, err
		}
	}
	return check(":sub:", subject)
}

var _ jwt.RevocationChecker = storeRevocation{}
