package apikey

import (
	"net/http"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Reason codes of the denials this package returns.
const (
	ReasonMalformed    = "apikey.malformed"      // not of the form pk_<id>_<secret>
	ReasonUnknown      = "apikey.unknown"        // no key has this id
	ReasonInvalid      = "apikey.invalid"        // the secret does not match the id
	ReasonExpired      = "apikey.expired"        // the key's expiry has passed
	ReasonDisabled     = "apikey.disabled"       // the key is disabled
	ReasonIPNotAllowed = "apikey.ip_not_allowed" // valid key, client outside its allowlist
	ReasonAmbiguous    = "apikey.ambiguous"      // a source carried more than one value
)

type reason uint8

const (
	reasonMalformed reason = iota
	reasonUnknown
	reasonInvalid
	reasonExpired
	reasonDisabled
	reasonIPNotAllowed
	reasonAmbiguous
	numReasons
)

// Challenges sent with 401 denials (see the package documentation).
const (
	challengeBearer        = `Bearer realm="portcullis", error="invalid_token"`
	challengeBearerRequest = `Bearer realm="portcullis", error="invalid_request"`
	challengeAPIKey        = `APIKey realm="portcullis"`
)

// denials holds every denial this package returns, built once: index [reason][bearer].
// They are shared and read-only, so denying allocates nothing either, which keeps
// floods of bad keys cheap.
var denials = func() (t [numReasons][2]*engine.Denial) {
	specs := [numReasons]struct {
		code, msg string
		status    int
	}{
		reasonMalformed:    {ReasonMalformed, "malformed API key", http.StatusUnauthorized},
		reasonUnknown:      {ReasonUnknown, "invalid API key", http.StatusUnauthorized},
		reasonInvalid:      {ReasonInvalid, "invalid API key", http.StatusUnauthorized},
		reasonExpired:      {ReasonExpired, "API key expired", http.StatusUnauthorized},
		reasonDisabled:     {ReasonDisabled, "API key disabled", http.StatusUnauthorized},
		reasonIPNotAllowed: {ReasonIPNotAllowed, "API key not allowed from this address", http.StatusForbidden},
		reasonAmbiguous:    {ReasonAmbiguous, "more than one API key credential", http.StatusBadRequest},
	}
	for r, s := range specs {
		for b := range 2 {
			d := engine.Deny(s.status, s.code, s.msg)
			if c := challenge(reason(r), b == 1); c != "" {
				d.Header = http.Header{"Www-Authenticate": {c}}
			}
			t[r][b] = d
		}
	}
	return t
}()

func challenge(r reason, bearer bool) string {
	switch {
	case r == reasonIPNotAllowed:
		return ""
	case r == reasonAmbiguous && bearer:
		return challengeBearerRequest
	case r == reasonAmbiguous:
		return ""
	case bearer:
		return challengeBearer
	}
	return challengeAPIKey
}

func deny(r reason, bearer bool) *engine.Denial {
	if bearer {
		return denials[r][1]
	}
	return denials[r][0]
}
