package jwt

import (
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/pkg/engine"
)

// extract returns the token of the first source that carries one. It returns
// engine.ErrNoCredentials when none does, and errAmbiguous when one source carries
// two different tokens (two Authorization headers, two cookies or parameters of the
// name): which one a later hop would use is unknowable.
func extract(sources []Source, r *engine.Request) (string, error) {
	for i := range sources {
		tok, err := sources[i].read(r)
		if err != nil || tok != "" {
			return tok, err
		}
	}
	return "", engine.ErrNoCredentials
}

func (s *Source) read(r *engine.Request) (string, error) {
	switch s.Kind {
	case FromBearer:
		return single(r.Header.Values("Authorization"), bearer)
	case FromHeader:
		return single(r.Header.Values(s.Name), func(v string) string {
			if s.Prefix == "" {
				return strings.TrimSpace(v)
			}
			if len(v) >= len(s.Prefix) && strings.EqualFold(v[:len(s.Prefix)], s.Prefix) {
				return strings.TrimSpace(v[len(s.Prefix):])
			}
			return ""
		})
	case FromCookie:
		return cookie(r.Header.Values("Cookie"), s.Name)
	case FromQuery:
		if r.RawQuery == "" {
			return "", nil
		}
		return single(r.Query()[s.Name], strings.TrimSpace)
	}
	return "", nil
}

// single applies get to every value and returns the one token found; two different
// tokens are ambiguous.
func single(values []string, get func(string) string) (string, error) {
	tok := ""
	for _, v := range values {
		t := get(v)
		if t == "" {
			continue
		}
		if tok != "" && t != tok {
			return "", errAmbiguous
		}
		tok = t
	}
	return tok, nil
}

// bearer returns the credentials of an RFC 6750 Bearer authorization value.
func bearer(v string) string {
	const scheme = "Bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(v[len(scheme):])
}

// cookie finds the cookie name in Cookie header lines without allocating for the
// others.
func cookie(lines []string, name string) (string, error) {
	tok := ""
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || k != name {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"`)
			if v == "" {
				continue
			}
			if tok != "" && v != tok {
				return "", errAmbiguous
			}
			tok = v
		}
	}
	return tok, nil
}

// jwtShaped reports whether tok looks like a JWS or JWE compact serialization: three
// or five non-empty-headed dot-separated parts. Anything else (an API key such as
// "pk_live_...") is not this authenticator's credential, so the next may try it.
func jwtShaped(tok string) bool {
	dots := strings.Count(tok, ".")
	return (dots == 2 || dots == 4) && tok != "" && tok[0] != '.'
}

// credentialHeaders lists the lowercase header names the sources read (cookies are
// not listed: hiding the Cookie header would break the upstream).
func credentialHeaders(sources []Source) []string {
	var out []string
	for _, s := range sources {
		var h string
		switch s.Kind {
		case FromBearer:
			h = "authorization"
		case FromHeader:
			h = strings.ToLower(http.CanonicalHeaderKey(s.Name))
		default:
			continue
		}
		if !contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

func queryParams(sources []Source) []string {
	var out []string
	for _, s := range sources {
		if s.Kind == FromQuery && !contains(out, s.Name) {
			out = append(out, s.Name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
