package apikey

import (
	"context"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Key is one configured API key. Several keys may share a Subject, so a new key can be
// rolled out before the old one is disabled.
type Key struct {
	ID      string            // [a-z0-9]{8}, unique
	Subject string            // who the key authenticates as; required
	Hash    [sha512.Size]byte // SHA-512 of the whole key string (see ParseHash)
	Scopes  []string
	// Expires is the instant from which the key is refused; zero means never.
	Expires time.Time
	// AllowedIPs, when non-empty, restricts the key to clients within these prefixes
	// (engine.Request.Peer.IP). Prefixes must be canonical (no host bits set).
	AllowedIPs []netip.Prefix
	// Disabled keys are refused (after their secret is verified).
	Disabled bool
}

// Source is one place a request may carry a key. Exactly one field is set.
type Source struct {
	Header string // a request header holding the bare key, e.g. "X-API-Key"
	Query  string // a query parameter holding the bare key, e.g. "api_key"
	Bearer bool   // "Authorization: Bearer pk_..."
}

// Options configure an Authenticator.
type Options struct {
	// Sources are tried in order; the first that carries a value decides. Default:
	// Bearer, then the X-API-Key header.
	Sources []Source
	// Now is the clock for expiry (default time.Now).
	Now func() time.Time
}

// Authenticator verifies API keys. It is immutable after New and safe for concurrent
// use.
type Authenticator struct {
	keys    map[string]*entry
	sources []source
	now     func() time.Time
	headers []string // lowercase header names read by the sources
	params  []string // query parameter names read by the sources
}

var _ engine.Authenticator = (*Authenticator)(nil)

// entry is a verified key's precomputed state; identity is returned shared.
type entry struct {
	hash     [sha512.Size]byte
	identity *engine.Identity
	expires  time.Time
	allowed  []netip.Prefix
	disabled bool
}

type source struct {
	header string // canonical header name, or "Authorization" for Bearer
	query  string
	bearer bool
}

// dummyHash is compared against when the id is unknown, so that path does the same work.
var dummyHash = sha512.Sum512([]byte("portcullis/apikey: no key has this digest"))

// New validates keys and sources and builds the authenticator. Every problem is
// reported, joined into one error.
func New(keys []Key, opts Options) (*Authenticator, error) {
	a := &Authenticator{keys: make(map[string]*entry, len(keys)), now: opts.Now}
	if a.now == nil {
		a.now = time.Now
	}
	var errs []error
	for i := range keys {
		k := &keys[i]
		e, err := newEntry(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d (%q): %w", i, k.ID, err))
			continue
		}
		if _, dup := a.keys[k.ID]; dup {
			errs = append(errs, fmt.Errorf("key %d (%q): duplicate id", i, k.ID))
			continue
		}
		a.keys[k.ID] = e
	}
	srcs := opts.Sources
	if len(srcs) == 0 {
		srcs = []Source{{Bearer: true}, {Header: "X-API-Key"}}
	}
	if err := a.addSources(srcs); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("apikey: %w", errors.Join(errs...))
	}
	return a, nil
}

func newEntry(k *Key) (*entry, error) {
	switch {
	case !validID(k.ID):
		return nil, fmt.Errorf("id must be %d to %d characters of [a-z0-9]", MinIDLen, MaxIDLen)
	case k.Subject == "":
		return nil, errors.New("subject is required")
	case strings.ContainsFunc(k.Subject, isControl):
		return nil, errors.New("subject contains control characters")
	case k.Hash == [sha512.Size]byte{}:
		return nil, errors.New("hash is required")
	}
	for _, s := range k.Scopes {
		if !validScope(s) {
			return nil, fmt.Errorf("invalid scope %q: want printable ASCII without spaces, quotes or backslashes", s)
		}
	}
	for _, p := range k.AllowedIPs {
		if !p.IsValid() {
			return nil, errors.New("invalid allowed IP prefix")
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("allowed IP prefix %s has host bits set (did you mean %s?)", p, p.Masked())
		}
	}
	scopes := slices.Clone(k.Scopes)
	return &entry{
		hash: k.Hash,
		identity: &engine.Identity{
			Subject:      k.Subject,
			Method:       engine.AuthAPIKey,
			KeyID:        k.ID,
			Scopes:       scopes,
			ScopesHeader: strings.Join(scopes, " "),
			Expires:      k.Expires,
		},
		expires:  k.Expires,
		allowed:  slices.Clone(k.AllowedIPs),
		disabled: k.Disabled,
	}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validScope accepts an RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func (a *Authenticator) addSources(srcs []Source) error {
	seen := make(map[Source]bool, len(srcs))
	for i, s := range srcs {
		set := 0
		for _, b := range []bool{s.Bearer, s.Header != "", s.Query != ""} {
			if b {
				set++
			}
		}
		switch {
		case set != 1:
			return fmt.Errorf("source %d: set exactly one of bearer, header, query", i)
		case s.Header != "" && !validToken(s.Header):
			return fmt.Errorf("source %d: invalid header name %q", i, s.Header)
		case s.Header != "" && strings.EqualFold(s.Header, "Authorization"):
			return fmt.Errorf("source %d: use bearer for the Authorization header", i)
		}
		s.Header = http.CanonicalHeaderKey(s.Header)
		if seen[s] {
			return fmt.Errorf("source %d: duplicate", i)
		}
		seen[s] = true
		switch {
		case s.Bearer:
			a.sources = append(a.sources, source{header: "Authorization", bearer: true})
			a.headers = append(a.headers, "authorization")
		case s.Header != "":
			a.sources = append(a.sources, source{header: s.Header})
			a.headers = append(a.headers, strings.ToLower(s.Header))
		default:
			a.sources = append(a.sources, source{query: s.Query})
			a.params = append(a.params, s.Query)
		}
	}
	return nil
}

// validToken reports whether s is an RFC 9110 token (a valid header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// CredentialHeaders returns the lowercase names of the request headers the sources
// read, so the policy can hide them from the upstream. The slice must not be modified.
func (a *Authenticator) CredentialHeaders() []string { return a.headers }

// QueryParams returns the query parameter names the sources read. The slice must not be
// modified.
func (a *Authenticator) QueryParams() []string { return a.params }

// Authenticate finds a key in r, verifies it and returns the key's shared identity,
// which callers must not modify. It returns engine.ErrNoCredentials when no source
// carries a key, and a *engine.Denial (shared, read-only) for any key that does not
// verify. A valid key's decision does not allocate.
func (a *Authenticator) Authenticate(_ context.Context, r *engine.Request) (*engine.Identity, error) {
	key, bearer, err := a.credential(r)
	if err != nil {
		return nil, err
	}
	id, ok := parseKey(key)
	if !ok {
		return nil, deny(reasonMalformed, bearer)
	}
	var buf [MaxKeyLen]byte // keeps the hash input on the stack
	n := copy(buf[:], key)
	sum := sha512.Sum512(buf[:n])
	e := a.keys[id]
	want := &dummyHash
	if e != nil {
		want = &e.hash
	}
	match := subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	switch {
	case e == nil:
		return nil, deny(reasonUnknown, bearer)
	case !match:
		return nil, deny(reasonInvalid, bearer)
	case e.disabled:
		return nil, deny(reasonDisabled, bearer)
	case !e.expires.IsZero() && !a.now().Before(e.expires):
		return nil, deny(reasonExpired, bearer)
	case len(e.allowed) > 0 && !ipAllowed(r.Peer.IP, e.allowed):
		return nil, deny(reasonIPNotAllowed, bearer)
	}
	return e.identity, nil
}

// CredentialID names the key r presents, read from the configured sources in order
// exactly as Authenticate reads it, for counting failures per credential:
// "apikey:<id>" (the public id, so every guess at one key's secret counts against that
// key), or "" when r carries no well-formed key or several. Never the secret.
func (a *Authenticator) CredentialID(r *engine.Request) string {
	key, _, err := a.credential(r)
	if err != nil {
		return ""
	}
	if id, ok := parseKey(key); ok {
		return "apikey:" + id
	}
	return ""
}

func ipAllowed(ip netip.Addr, allowed []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// credential returns the key from the first source that carries one and whether it
// came as a Bearer token.
func (a *Authenticator) credential(r *engine.Request) (key string, bearer bool, err error) {
	for i := range a.sources {
		s := &a.sources[i]
		var vs []string
		switch {
		case s.bearer:
			vs = r.Header[s.header]
			if len(vs) == 0 {
				continue
			}
			tok, mine, many := bearerKey(vs)
			if many {
				return "", true, deny(reasonAmbiguous, true)
			}
			if !mine {
				continue // not an API key: another authenticator's credential
			}
			return tok, true, nil
		case s.query != "":
			if r.RawQuery == "" {
				continue
			}
			vs = r.Query()[s.query]
		default:
			vs = r.Header[s.header]
		}
		switch {
		case len(vs) > 1:
			return "", false, deny(reasonAmbiguous, false)
		case len(vs) == 1 && vs[0] != "":
			return vs[0], false, nil
		}
	}
	return "", false, engine.ErrNoCredentials
}

// bearerKey returns the API key from Authorization values. mine reports whether a
// value is a Bearer token starting with Prefix; many reports such a value among
// several Authorization headers (RFC 9110 allows one).
func bearerKey(vs []string) (tok string, mine, many bool) {
	for _, v := range vs {
		if t, ok := bearerToken(v); ok && strings.HasPrefix(t, Prefix) {
			if len(vs) > 1 {
				return "", true, true
			}
			return t, true, false
		}
	}
	return "", false, false
}

// bearerToken splits "Bearer <token>" (scheme case-insensitive, one or more spaces).
func bearerToken(v string) (string, bool) {
	const scheme = "Bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimLeft(v[len(scheme):], " "), true
}
