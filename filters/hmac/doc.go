// Package hmac authenticates requests by their HMAC or public-key signature: HTTP
// Message Signatures (RFC 9421, with Content-Digest body integrity) and the webhook
// schemes of GitHub, Stripe and Slack plus a simple generic one.
//
// Each key id belongs to one client, whose subject and scopes become the request's
// identity (method "hmac", key id reported upstream). A client may hold several keys,
// even under one id, so secrets rotate without downtime.
//
// # Failures
//
// A request without a signature of the configured scheme gets
// engine.ErrNoCredentials, so the next authenticator may try. A signature that is
// present but unacceptable is a 401 *engine.Denial with a stable reason (Reason*
// constants) for the audit log and a generic message for the client; RFC 9421
// denials carry "WWW-Authenticate: Signature". A failing replay store or key resolver
// is a technical error, handled by the stage's on_error (deny 503 by default).
//
// # Body
//
// Signatures that cover the body need all of it: front-ends read BodyLimit() bytes
// (engine.Pipeline.BodyLimit); a body that was not forwarded denies with
// hmac.body_missing, one longer than the limit with hmac.body_truncated. Behind
// Envoy, ext_authz must send the body as bytes (with_request_body with
// pack_as_bytes).
//
// # Replay
//
// An accepted signature is remembered in a OnceSet until it could no longer be
// accepted anyway: by keyid and nonce, or by keyid, created and signature bytes when
// there is no nonce (RFC 9421); by timestamp and signature for the timestamped
// webhook schemes. GitHub signatures carry no timestamp; see
// Options.GitHubReplayWindow. The default OnceSet is in memory, for one replica; give
// the shared store when replicas must agree.
//
// Comparisons of MACs are constant time.
package hmac
