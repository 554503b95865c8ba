package introspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Stable denial reasons.
const (
	ReasonInactive  = "introspect.inactive"  // the endpoint says the token is not active
	ReasonExpired   = "introspect.expired"   // exp passed
	ReasonIssuer    = "introspect.issuer"    // iss is not the configured issuer
	ReasonAudience  = "introspect.audience"  // no configured audience in aud
	ReasonScope     = "introspect.scope"     // a required scope is missing (403)
	ReasonMalformed = "introspect.malformed" // the credential is not a usable token
)

// Authenticator verifies opaque bearer tokens through an introspection endpoint.
type Authenticator struct {
	opts   Options
	client *http.Client
	cache  *cache
	flight singleflight.Group
	deny   map[string]*engine.Denial
	// calls counts endpoint requests, for tests and metrics.
	calls atomic.Int64
}

var _ engine.Authenticator = (*Authenticator)(nil)

// New validates o and applies the defaults documented on Options.
func New(o Options) (*Authenticator, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	client, err := newClient(o)
	if err != nil {
		return nil, fmt.Errorf("introspection provider %q: %w", o.Name, err)
	}
	a := &Authenticator{opts: o, client: client, cache: newCache(o.CacheSize), deny: map[string]*engine.Denial{}}
	for reason, desc := range map[string]string{
		ReasonInactive: "token is not active", ReasonExpired: "token expired",
		ReasonIssuer: "token issuer is not accepted", ReasonAudience: "token audience is not accepted",
		ReasonMalformed: "credential is not a bearer token",
	} {
		a.deny[reason] = challenge(http.StatusUnauthorized, reason, o.Realm, "invalid_token", desc)
	}
	a.deny[ReasonScope] = challenge(http.StatusForbidden, ReasonScope, o.Realm, "insufficient_scope", "token lacks a required scope")
	return a, nil
}

func challenge(status int, reason, realm, code, desc string) *engine.Denial {
	d := engine.Deny(status, reason, desc)
	d.Header = http.Header{"Www-Authenticate": {`Bearer realm="` + realm + `", error="` + code + `", error_description="` + desc + `"`}}
	return d
}

func newClient(o Options) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLS != nil {
		tc = o.TLS.Clone()
	}
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("no certificate in the CA PEM")
		}
		tc.RootCAs = pool
	}
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc, ForceAttemptHTTP2: true,
			TLSHandshakeTimeout: o.Timeout, ResponseHeaderTimeout: o.Timeout, MaxIdleConnsPerHost: 16},
		Timeout:       o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Name returns the provider name.
func (a *Authenticator) Name() string { return a.opts.Name }

// CredentialHeaders returns the lowercase header the token is read from.
func (a *Authenticator) CredentialHeaders() []string {
	if a.opts.Header != "" {
		return []string{strings.ToLower(a.opts.Header)}
	}
	return []string{"authorization"}
}

// Close releases idle connections.
func (a *Authenticator) Close() error {
	a.client.CloseIdleConnections()
	return nil
}

// Authenticate implements engine.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, r *engine.Request) (*engine.Identity, error) {
	tok, ok := a.token(r)
	if !ok {
		return nil, engine.ErrNoCredentials
	}
	if len(tok) > a.opts.MaxTokenSize || !token68(tok) {
		return nil, a.deny[ReasonMalformed]
	}
	now := a.opts.Now()
	key := sha256.Sum256([]byte(tok))
	res := a.cache.get(key, now)
	if res == nil {
		// The shared call must not end with the caller that started it: callers that
		// joined it would all fail with that caller's cancellation. It runs without
		// the caller's cancellation, bounded by the client's timeout, and each caller
		// waits for it under its own context.
		flight := a.flight.DoChan(string(key[:]), func() (any, error) {
			// A flight that ended between our cache miss and this call has already
			// cached the outcome: use it rather than call the endpoint again.
			if res := a.cache.get(key, now); res != nil {
				return res, nil
			}
			return a.introspect(context.WithoutCancel(ctx), tok, key, now)
		})
		select {
		case out := <-flight:
			if out.Err != nil {
				return nil, out.Err
			}
			res = out.Val.(*result)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if res.reason != "" {
		return nil, a.deny[res.reason]
	}
	if !res.exp.IsZero() && !now.Before(res.exp) {
		return nil, a.deny[ReasonExpired]
	}
	return res.id, nil
}

func (a *Authenticator) token(r *engine.Request) (string, bool) {
	if a.opts.Header != "" {
		v := strings.TrimSpace(r.Header.Get(a.opts.Header))
		return v, v != ""
	}
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "Bearer ") {
		return "", false
	}
	v = strings.TrimSpace(v[7:])
	return v, v != ""
}

// token68 reports whether s uses only RFC 7235 token68 characters.
func token68(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0) {
			return false
		}
	}
	return true
}

// result is one cached introspection outcome: an identity or a denial reason.
type result struct {
	id     *engine.Identity
	reason string
	exp    time.Time // token expiry (zero: none given)
}

// introspect calls the endpoint, judges the response and caches the outcome.
func (a *Authenticator) introspect(ctx context.Context, tok string, key [32]byte, now time.Time) (*result, error) {
	resp, err := a.call(ctx, tok)
	if err != nil {
		return nil, err
	}
	res := a.judge(resp, now)
	until := now.Add(a.opts.NegativeTTL)
	if res.reason == "" {
		until = now.Add(a.opts.CacheTTL)
		if !res.exp.IsZero() && res.exp.Before(until) {
			until = res.exp
		}
	}
	if until.After(now) {
		a.cache.put(key, res, now, until)
	}
	return res, nil
}

// call posts the RFC 7662 request and decodes the JSON response.
func (a *Authenticator) call(ctx context.Context, tok string) (map[string]any, error) {
	a.calls.Add(1)
	form := url.Values{"token": {tok}}
	if a.opts.TokenTypeHint != "" {
		form.Set("token_type_hint", a.opts.TokenTypeHint)
	}
	if a.opts.PostCredentials {
		form.Set("client_id", a.opts.ClientID)
		form.Set("client_secret", string(a.opts.ClientSecret))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.opts.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection %s: %w", a.opts.Name, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if !a.opts.PostCredentials && a.opts.ClientID != "" {
		req.SetBasicAuth(url.QueryEscape(a.opts.ClientID), url.QueryEscape(string(a.opts.ClientSecret)))
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection %s: %w", a.opts.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection %s: status %d", a.opts.Name, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, a.opts.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("introspection %s: read: %w", a.opts.Name, err)
	}
	if int64(len(body)) > a.opts.MaxResponseBytes {
		return nil, fmt.Errorf("introspection %s: response exceeds %d bytes", a.opts.Name, a.opts.MaxResponseBytes)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("introspection %s: response is not a JSON object", a.opts.Name)
	}
	return m, nil
}

// judge applies active, exp, iss, aud and scope to a response.
func (a *Authenticator) judge(m map[string]any, now time.Time) *result {
	if m["active"] != true {
		return &result{reason: ReasonInactive}
	}
	res := &result{}
	if n, ok := m["exp"].(json.Number); ok {
		sec, err := n.Int64()
		if err != nil {
			return &result{reason: ReasonInactive}
		}
		res.exp = time.Unix(sec, 0)
		if !now.Before(res.exp) {
			return &result{reason: ReasonExpired}
		}
	}
	iss, _ := m["iss"].(string)
	if a.opts.Issuer != "" && iss != a.opts.Issuer {
		return &result{reason: ReasonIssuer}
	}
	if len(a.opts.Audiences) > 0 && !audienceOK(m["aud"], a.opts.Audiences) {
		return &result{reason: ReasonAudience}
	}
	scopes := strings.Fields(stringOf(m["scope"]))
	for _, s := range a.opts.RequiredScopes {
		if !slices.Contains(scopes, s) {
			return &result{reason: ReasonScope}
		}
	}
	sub := stringOf(m["sub"])
	if sub == "" {
		sub = stringOf(m["username"])
	}
	res.id = &engine.Identity{
		Subject: sub, Method: Method, Issuer: iss, Scopes: scopes,
		ScopesHeader: strings.Join(scopes, " "), Claims: m, Expires: res.exp,
	}
	return res
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func audienceOK(aud any, want []string) bool {
	switch v := aud.(type) {
	case string:
		return slices.Contains(want, v)
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}
