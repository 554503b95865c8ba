// Package enginetest provides request builders and behaving stages for tests of code
// built on pkg/engine, in the spirit of net/http/httptest.
package enginetest

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// NewRequest returns a request for method and target ("/path?query") from 192.0.2.1,
// with the path cleaned the way front-ends clean it.
func NewRequest(method, target string) *engine.Request {
	path, query, _ := strings.Cut(target, "?")
	dec, _, err := engine.CleanPath(path)
	if err != nil {
		dec = path
	}
	ip := netip.MustParseAddr("192.0.2.1")
	return &engine.Request{
		ID: "test-request", Method: method, Scheme: "http", Host: "example.test",
		Path: dec, RawPath: path, RawQuery: query, Header: http.Header{},
		Peer:     engine.Peer{IP: ip, Direct: ip},
		Received: time.Unix(1_700_000_000, 0),
	}
}

// TokenAuth authenticates "Authorization: Bearer <token>" against a fixed token map.
// Other schemes and a missing header are "no credentials"; an unknown token is a 401.
type TokenAuth map[string]*engine.Identity

// Authenticate implements engine.Authenticator.
func (t TokenAuth) Authenticate(_ context.Context, r *engine.Request) (*engine.Identity, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, engine.ErrNoCredentials
	}
	id, ok := t[tok]
	if !ok {
		d := engine.Deny(http.StatusUnauthorized, "token.unknown", "invalid token")
		d.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}
		return nil, d
	}
	return id, nil
}

// Stage wraps an authenticator or filter as a stage of the phase it belongs to.
func Stage(name string, phase engine.Phase, v any) engine.Stage {
	s := engine.Stage{Name: name, Phase: phase}
	switch x := v.(type) {
	case engine.Authenticator:
		s.Auth = x
	case engine.Filter:
		s.Filter = x
	}
	return s
}

// DenyAll is a filter that always denies with status and reason.
func DenyAll(status int, reason string) engine.Filter {
	return engine.FilterFunc(func(context.Context, *engine.Request, *engine.Decision) error {
		return engine.Deny(status, reason, "")
	})
}
