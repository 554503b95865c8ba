package jwt

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/pkg/engine"
)

// Stable denial reasons. They are safe to log and to show to clients.
const (
	ReasonMalformed     = "jwt.malformed"       // not a well-formed compact JWS, or strict decoding failed
	ReasonTooLarge      = "jwt.too_large"       // longer than MaxTokenSize
	ReasonEncrypted     = "jwt.encrypted"       // JWE (five parts or an "enc" header)
	ReasonNested        = "jwt.nested"          // cty: JWT (a token inside a token)
	ReasonCrit          = "jwt.crit"            // a critical header extension this verifier does not implement
	ReasonAlgNotAllowed = "jwt.alg_not_allowed" // alg is none, unknown, not allowed, or does not fit the key
	ReasonUnknownKid    = "jwt.unknown_kid"     // kid names no configured key
	ReasonSignature     = "jwt.signature"       // the signature does not verify
	ReasonExpired       = "jwt.expired"         // exp passed (beyond the skew)
	ReasonNotYetValid   = "jwt.not_yet_valid"   // nbf or iat in the future (beyond the skew)
	ReasonIssuer        = "jwt.issuer"          // iss is not the configured issuer
	ReasonAudience      = "jwt.audience"        // no configured audience in aud
	ReasonClaim         = "jwt.claim"           // a required claim is missing, mistyped or does not match
	ReasonRevoked       = "jwt.revoked"         // jti or subject is on a deny list
)

// ErrNoKeys is the technical failure of a provider that has no keys yet (the first
// remote fetch is pending or failing). It is not a denial: the stage's on_error
// decides (503 by default), since the token may well be valid.
var ErrNoKeys = errors.New("jwt: no verification keys loaded")

// VerifyError is a verification failure: a stable Reason and a client-safe
// Description naming the rule that failed. It never contains the token.
type VerifyError struct {
	Reason      string
	Description string
}

func (e *VerifyError) Error() string { return e.Reason + ": " + e.Description }

func verr(reason, desc string) *VerifyError { return &VerifyError{Reason: reason, Description: desc} }

// The verification failures. Pre-allocated: the hot path returns them without allocating.
var (
	errMalformed      = verr(ReasonMalformed, "token is not a compact JWS")
	errBase64         = verr(ReasonMalformed, "token is not canonical base64url")
	errHeaderJSON     = verr(ReasonMalformed, "token header is not a strict JSON object")
	errPayloadJSON    = verr(ReasonMalformed, "token payload is not a strict JSON object")
	errDuplicateKey   = verr(ReasonMalformed, "duplicate JSON key in token")
	errHeaderField    = verr(ReasonMalformed, "token header field has the wrong type")
	errB64            = verr(ReasonMalformed, "unencoded payload (b64) is not accepted")
	errTooLarge       = verr(ReasonTooLarge, "token exceeds the maximum size")
	errEncrypted      = verr(ReasonEncrypted, "encrypted tokens (JWE) are not accepted")
	errNested         = verr(ReasonNested, "nested tokens are not accepted")
	errCrit           = verr(ReasonCrit, "token requires an unsupported critical extension")
	errAlgNone        = verr(ReasonAlgNotAllowed, "unsecured tokens (alg none) are never accepted")
	errAlgUnknown     = verr(ReasonAlgNotAllowed, "token algorithm is not supported")
	errAlgNotAllowed  = verr(ReasonAlgNotAllowed, "token algorithm is not allowed")
	errAlgKeyMismatch = verr(ReasonAlgNotAllowed, "token algorithm does not match any configured key")
	errUnknownKid     = verr(ReasonUnknownKid, "token key id matches no configured key")
	errSignature      = verr(ReasonSignature, "token signature is invalid")
	errExpired        = verr(ReasonExpired, "token expired")
	errNoExpiry       = verr(ReasonClaim, "token has no exp claim")
	errNotYetValid    = verr(ReasonNotYetValid, "token is not valid yet")
	errIssuedFuture   = verr(ReasonNotYetValid, "token was issued in the future")
	errIssuer         = verr(ReasonIssuer, "token issuer is not accepted")
	errAudience       = verr(ReasonAudience, "token audience is not accepted")
	errClaimType      = verr(ReasonClaim, "registered claim has the wrong type")
	errSubject        = verr(ReasonClaim, "token has no subject")
	errRevoked        = verr(ReasonRevoked, "token has been revoked")
)

// denials holds one precomputed *engine.Denial per VerifyError, so a rejection does
// not allocate. Denials are shared and must not be modified.
type denials struct {
	realm string
	byErr map[*VerifyError]*engine.Denial
}

func newDenials(realm string, extra []*VerifyError) *denials {
	d := &denials{realm: realm, byErr: make(map[*VerifyError]*engine.Denial)}
	all := []*VerifyError{errMalformed, errBase64, errHeaderJSON, errPayloadJSON, errDuplicateKey,
		errHeaderField, errB64, errTooLarge, errEncrypted, errNested, errCrit, errAlgNone,
		errAlgUnknown, errAlgNotAllowed, errAlgKeyMismatch, errUnknownKid, errSignature,
		errExpired, errNoExpiry, errNotYetValid, errIssuedFuture, errIssuer, errAudience,
		errClaimType, errSubject, errRevoked, errAmbiguous}
	for _, e := range append(all, extra...) {
		d.byErr[e] = d.build(e)
	}
	return d
}

// errAmbiguous: one source carried more than one token.
var errAmbiguous = verr(ReasonMalformed, "request carries more than one token")

// build makes the RFC 6750 §3 challenge for e.
func (d *denials) build(e *VerifyError) *engine.Denial {
	den := engine.Deny(http.StatusUnauthorized, e.Reason, e.Description)
	den.Header = http.Header{"Www-Authenticate": {
		`Bearer realm="` + quoteSafe(d.realm) + `", error="invalid_token", error_description="` +
			quoteSafe(e.Description) + `"`,
	}}
	return den
}

// denial returns the denial for err, building one for a VerifyError it does not know
// (claim matcher failures carry their own description).
func (d *denials) denial(err error) error {
	var ve *VerifyError
	if !errors.As(err, &ve) {
		return err // technical failure: the stage's on_error decides
	}
	if den, ok := d.byErr[ve]; ok {
		return den
	}
	return d.build(ve)
}

// quoteSafe drops characters that cannot appear in an RFC 7230 quoted-string as
// RFC 6750 restricts them (no quote, backslash or controls).
func quoteSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c >= 0x80 {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c >= 0x80) {
			b.WriteByte(c)
		}
	}
	return b.String()
}
