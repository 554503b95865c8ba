package httpsig

import "errors"

// Errors returned by verification, signing and digest checks. Returned errors wrap
// exactly one of them (test with errors.Is) and add detail safe to log: never a key,
// never a signature.
var (
	// ErrNoSignature: the message has neither Signature-Input nor Signature.
	ErrNoSignature = errors.New("no signature")
	// ErrMalformed: a signature field, a component identifier or a covered value
	// cannot be parsed, or the signature is not well formed.
	ErrMalformed = errors.New("malformed signature")
	// ErrUnknownKey: no key is known for the keyid (or keyid is absent).
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissingComponent: the policy requires a covered component, a signature
	// parameter or a tag that the signature lacks, or a covered field is absent.
	ErrMissingComponent = errors.New("missing component")
	// ErrExpired: created is too old or in the future, or expires has passed.
	ErrExpired = errors.New("signature expired")
	// ErrDigestMismatch: Content-Digest does not match the body, or names no
	// accepted algorithm.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrBadSignature: the signature does not verify with any key for the keyid, or
	// its algorithm is not allowed.
	ErrBadSignature = errors.New("bad signature")
	// ErrBodyMissing: a covered Content-Digest must be checked but the body was not
	// made available.
	ErrBodyMissing = errors.New("body not available")
	// ErrBodyTruncated: a covered Content-Digest must be checked but only a prefix
	// of the body is available.
	ErrBodyTruncated = errors.New("body truncated")
)
