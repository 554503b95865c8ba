package hmac

import (
	"crypto"
	"time"

	"github.com/portcullis/portcullis/pkg/httpsig"
)

// Scheme is the signature format an Authenticator verifies.
type Scheme string

// The supported schemes.
const (
	// SchemeRFC9421 verifies HTTP Message Signatures (Signature-Input, Signature)
	// with keys looked up by keyid (the default).
	SchemeRFC9421 Scheme = "rfc9421"
	// SchemeGitHub verifies "X-Hub-Signature-256: sha256=<hex>" over the raw body.
	SchemeGitHub Scheme = "github"
	// SchemeStripe verifies "Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]" over
	// "<t>.<body>"; any v1 may match (secret rotation).
	SchemeStripe Scheme = "stripe"
	// SchemeSlack verifies "X-Slack-Signature: v0=<hex>" over "v0:<ts>:<body>" with
	// ts from X-Slack-Request-Timestamp.
	SchemeSlack Scheme = "slack"
	// SchemeGeneric verifies "X-Signature: sha256=<hex>" over
	// "<ts>.<METHOD>.<target>.<body>", ts from X-Timestamp and target the raw path
	// plus "?query" when there is one.
	SchemeGeneric Scheme = "generic"
)

// Defaults applied by New.
const (
	DefaultName           = "hmac"
	DefaultBodyLimit      = 1 << 20 // bytes of body read for verification
	DefaultTolerance      = 5 * time.Minute
	DefaultReplayCapacity = 100_000 // entries of the in-memory replay set
	// MaxWebhookKeys bounds the keys of a webhook scheme: there is no key id, so each
	// request is checked against every key.
	MaxWebhookKeys = 16
)

// Key is one signing key of a client.
type Key struct {
	// ID names the key: the RFC 9421 keyid, and the key id reported upstream for
	// every scheme. Keys of one client may share an ID (rotation); IDs are unique
	// across clients.
	ID string
	// Secret is the raw HMAC key (not base64), at least httpsig.MinHMACKeyBytes.
	// Webhook secrets are used as their ASCII bytes (Stripe's "whsec_..." included).
	Secret []byte
	// Algorithm is the RFC 9421 algorithm (default hmac-sha256). Webhook schemes
	// take hmac-sha256 only.
	Algorithm httpsig.Algorithm
	// PublicKey verifies the asymmetric RFC 9421 algorithms (ed25519.PublicKey,
	// *ecdsa.PublicKey on P-256, *rsa.PublicKey >= 2048 bits).
	PublicKey crypto.PublicKey
}

// Client is one caller: who it authenticates as and the keys it signs with.
type Client struct {
	Subject string
	Scopes  []string
	Keys    []Key
}

// Options configure an Authenticator.
type Options struct {
	// Name namespaces replay-set keys, so providers sharing a store never collide
	// (default DefaultName).
	Name string
	// Scheme is the signature format (default SchemeRFC9421).
	Scheme Scheme
	// Clients and their keys; at least one.
	Clients []Client

	// Policy is the RFC 9421 policy (see httpsig.Policy for its strict defaults:
	// @method and @target-uri covered, content-digest when there is a body, created
	// at most 5 minutes old with 30 seconds of skew).
	Policy httpsig.Policy

	// Header overrides a webhook scheme's signature header name.
	Header string
	// TimestampHeader overrides the Slack or generic scheme's timestamp header.
	TimestampHeader string
	// Tolerance is the largest accepted |now - timestamp| for Stripe, Slack and the
	// generic scheme (default DefaultTolerance).
	Tolerance time.Duration

	// Replay remembers accepted signatures (nil: an in-memory set for this process,
	// DefaultReplayCapacity entries). Use the shared store when replicas must agree.
	Replay OnceSet
	// DisableReplay turns replay detection off.
	DisableReplay bool
	// GitHubReplayWindow, when positive, rejects a byte-identical GitHub delivery
	// seen within this window. GitHub signatures carry no timestamp, so replay
	// detection for them is opt-in: a redelivery from GitHub is byte-identical too.
	GitHubReplayWindow time.Duration

	// BodyLimit is how many body bytes front-ends must read for verification
	// (default DefaultBodyLimit). Larger bodies arrive truncated and are denied.
	BodyLimit int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}
