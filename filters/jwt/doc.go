// Package jwt authenticates JWT bearer tokens (RFC 7519) signed as compact JWS
// (RFC 7515) for one identity provider per Authenticator.
//
// Layers, bottom up:
//   - ParseCompact: strict decoding. Canonical base64url only; header and payload go
//     through a small RFC 8259 parser that rejects duplicate keys, invalid UTF-8 and
//     lone surrogates (encoding/json accepts all three, and two parsers disagreeing on
//     "alg" or "sub" is an attack surface). JWE, nested tokens, "crit", "b64" and
//     "none" are rejected with their own reasons.
//   - KeySet: keys parsed with jwx (JWK to crypto conversion, point validation) under
//     a load policy: no mixed symmetric/asymmetric sets, unique kids, RSA >= 2048 bits
//     without the ROCA fingerprint, HMAC secrets >= 256 bits, a JWK alg that fits its
//     key. Keys are converted once; KeySet.VerifyJWS checks a signature with the
//     standard library only (jku, x5u, jwk and x5c are never read).
//   - Authenticator: token sources, claim rules (iss, aud, exp/nbf/iat with skew,
//     required claims), revocation, identity building, and a bounded cache of verified
//     tokens keyed by SHA-256 with singleflight on first use.
//
// Remote keys (a JWKS URL or OIDC discovery) are fetched by RemoteKeys with its own
// net/http client rather than jwx's jwk.Cache: the policy above must gate every set
// before it replaces the last good one, unchanged keys must keep their identity so
// cached verifications survive a refresh while removed keys retire theirs, early
// refreshes for unknown kids must be rate-limited and joinable by waiting requests,
// and readiness needs the last error and timestamps. Owning the loop (one goroutine,
// Start/Close) gives that control with a few hundred lines and no hidden goroutines.
package jwt
