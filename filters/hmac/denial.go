package hmac

import (
	"errors"
	"net/http"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// Reason codes of the denials this package returns (all 401).
const (
	ReasonUnknownKey       = "hmac.unknown_key"       // no key for the keyid
	ReasonMissingComponent = "hmac.missing_component" // policy: component, parameter or tag not covered
	ReasonExpired          = "hmac.expired"           // created/timestamp too old or in the future, expires passed
	ReasonReplay           = "hmac.replay"            // the signature was already accepted
	ReasonDigestMismatch   = "hmac.digest_mismatch"   // Content-Digest does not match the body
	ReasonBadSignature     = "hmac.bad_signature"     // no key verifies the signature
	ReasonMalformed        = "hmac.malformed"         // signature fields do not parse
	ReasonBodyMissing      = "hmac.body_missing"      // the body is covered but was not forwarded
	ReasonBodyTruncated    = "hmac.body_truncated"    // the body is covered but exceeds the body limit
)

type reason uint8

const (
	rUnknownKey reason = iota
	rMissingComponent
	rExpired
	rReplay
	rDigestMismatch
	rBadSignature
	rMalformed
	rBodyMissing
	rBodyTruncated
	numReasons
)

const (
	msgInvalid       = "invalid request signature"
	msgBodyMissing   = "the request body is needed to verify the signature but was not received"
	msgBodyTruncated = "the request body is too large to verify the signature"
	// challengeSignature is sent with RFC 9421 denials.
	challengeSignature = "Signature"
)

// denials holds every denial, built once and shared read-only: [reason][rfc9421].
// Clients see a generic message; the reason code goes to the audit log.
var denials = func() (t [numReasons][2]*engine.Denial) {
	codes := [numReasons]string{
		rUnknownKey: ReasonUnknownKey, rMissingComponent: ReasonMissingComponent,
		rExpired: ReasonExpired, rReplay: ReasonReplay, rDigestMismatch: ReasonDigestMismatch,
		rBadSignature: ReasonBadSignature, rMalformed: ReasonMalformed,
		rBodyMissing: ReasonBodyMissing, rBodyTruncated: ReasonBodyTruncated,
	}
	for r, code := range codes {
		msg := msgInvalid
		switch reason(r) {
		case rBodyMissing:
			msg = msgBodyMissing
		case rBodyTruncated:
			msg = msgBodyTruncated
		}
		t[r][0] = engine.Deny(http.StatusUnauthorized, code, msg)
		d := engine.Deny(http.StatusUnauthorized, code, msg)
		d.Header = http.Header{"Www-Authenticate": {challengeSignature}}
		t[r][1] = d
	}
	return t
}()

func (a *Authenticator) deny(r reason) *engine.Denial {
	if a.scheme == SchemeRFC9421 {
		return denials[r][1]
	}
	return denials[r][0]
}

// errorReasons maps the httpsig sentinel errors to reasons.
var errorReasons = [...]struct {
	err error
	r   reason
}{
	{httpsig.ErrMalformed, rMalformed},
	{httpsig.ErrUnknownKey, rUnknownKey},
	{httpsig.ErrMissingComponent, rMissingComponent},
	{httpsig.ErrExpired, rExpired},
	{httpsig.ErrDigestMismatch, rDigestMismatch},
	{httpsig.ErrBadSignature, rBadSignature},
	{httpsig.ErrBodyMissing, rBodyMissing},
	{httpsig.ErrBodyTruncated, rBodyTruncated},
}

// denialFor maps a verification error to a denial; ok is false for a technical
// failure (e.g. a key resolver error), which is returned as is.
func (a *Authenticator) denialFor(err error) (*engine.Denial, bool) {
	for _, e := range errorReasons {
		if errors.Is(err, e.err) {
			return a.deny(e.r), true
		}
	}
	return nil, false
}
