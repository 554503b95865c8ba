package jwt

import (
	"strings"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// newIdentity builds the identity of a verified token. It is computed once per token
// and shared by every request that carries it (cache hits), so it is never modified.
func (a *Authenticator) newIdentity(claims map[string]any, reg *registered, k *Key, payloadSeg string) *engine.Identity {
	id := &engine.Identity{
		Subject: reg.sub,
		Method:  engine.AuthJWT,
		Issuer:  reg.iss,
		KeyID:   k.ID,
		Claims:  claims,
	}
	if reg.hasExp {
		id.Expires = time.Unix(reg.exp, 0)
	}
	id.Scopes = scopes(claims, a.opts.ScopeClaims)
	id.ScopesHeader = strings.Join(id.Scopes, " ")
	n := len(a.opts.ClaimHeaders)
	if a.opts.PayloadHeader != "" {
		n++
	}
	if n > 0 {
		id.Headers = make([]engine.HeaderValue, 0, n)
	}
	for _, ch := range a.opts.ClaimHeaders {
		if v, ok := headerText(lookup(claims, ch.Claim)); ok {
			id.Headers = append(id.Headers, engine.HeaderValue{Name: ch.Header, Value: v})
		}
	}
	if a.opts.PayloadHeader != "" {
		// The payload segment as sent is the base64url of the verified payload bytes.
		id.Headers = append(id.Headers, engine.HeaderValue{Name: a.opts.PayloadHeader, Value: payloadSeg})
	}
	return id
}

// scopes collects scopes from the claims: space-separated strings and arrays of
// strings, in order, without duplicates.
func scopes(claims map[string]any, names []string) []string {
	var out []string
	add := func(s string) {
		if s != "" && !contains(out, s) {
			out = append(out, s)
		}
	}
	for _, name := range names {
		switch v := lookup(claims, name).(type) {
		case string:
			for _, s := range strings.Fields(v) {
				add(s)
			}
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					add(s)
				}
			}
		}
	}
	return out
}

// headerText formats a claim for an HTTP header: scalars as text, arrays of scalars
// joined with ",". Objects, nulls and values with control characters are refused, so
// a claim cannot inject a header line.
func headerText(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			t, ok := scalarText(e)
			if !ok {
				return "", false
			}
			parts = append(parts, t)
		}
		s = strings.Join(parts, ",")
	default:
		var ok bool
		if s, ok = scalarText(v); !ok {
			return "", false
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", false
		}
	}
	return s, s != ""
}
