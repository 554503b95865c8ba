package hmac

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// maxCandidates bounds the signatures one webhook header may offer (Stripe v1=...).
const maxCandidates = 8

// webhook is a compiled webhook scheme.
type webhook struct {
	header    string // canonical signature header
	tsHeader  string // canonical timestamp header ("" for GitHub and Stripe)
	tolerance time.Duration
	ghReplay  time.Duration
}

// hookKey is one webhook secret with its identity and a pool of keyed MACs.
type hookKey struct {
	secret   []byte
	identity *engine.Identity
	macs     *sync.Pool
}

func (k *hookKey) mac() hash.Hash {
	if h, ok := k.macs.Get().(hash.Hash); ok {
		h.Reset()
		return h
	}
	return hmac.New(sha256.New, k.secret)
}

var defaultHeaders = map[Scheme][2]string{
	SchemeGitHub:  {"X-Hub-Signature-256", ""},
	SchemeStripe:  {"Stripe-Signature", ""},
	SchemeSlack:   {"X-Slack-Signature", "X-Slack-Request-Timestamp"},
	SchemeGeneric: {"X-Signature", "X-Timestamp"},
}

func (a *Authenticator) buildWebhook(o *Options) error {
	hdr, ok := defaultHeaders[o.Scheme]
	if !ok {
		return fmt.Errorf("unknown scheme %q", o.Scheme)
	}
	if o.Header != "" {
		hdr[0] = o.Header
	}
	if o.TimestampHeader != "" && hdr[1] != "" {
		hdr[1] = o.TimestampHeader
	}
	a.hook = webhook{header: http.CanonicalHeaderKey(hdr[0]), tolerance: o.Tolerance, ghReplay: o.GitHubReplayWindow}
	if hdr[1] != "" {
		a.hook.tsHeader = http.CanonicalHeaderKey(hdr[1])
	}
	if err := validateClients(o.Clients); err != nil {
		return err
	}
	var errs []error
	for i := range o.Clients {
		c := &o.Clients[i]
		for j, k := range c.Keys {
			switch {
			case k.Algorithm != "" && k.Algorithm != httpsig.HMACSHA256:
				errs = append(errs, fmt.Errorf("clients[%d].keys[%d]: scheme %s takes hmac-sha256 only", i, j, o.Scheme))
			case k.PublicKey != nil:
				errs = append(errs, fmt.Errorf("clients[%d].keys[%d]: scheme %s takes a secret", i, j, o.Scheme))
			case len(k.Secret) < httpsig.MinHMACKeyBytes:
				errs = append(errs, fmt.Errorf("clients[%d].keys[%d]: secret shorter than %d bytes", i, j, httpsig.MinHMACKeyBytes))
			default:
				a.hookKeys = append(a.hookKeys, hookKey{
					secret: append([]byte(nil), k.Secret...), identity: identity(c, k.ID), macs: &sync.Pool{},
				})
			}
		}
	}
	if len(a.hookKeys) > MaxWebhookKeys {
		errs = append(errs, fmt.Errorf("%d keys: a webhook scheme takes at most %d (each request is checked against all)", len(a.hookKeys), MaxWebhookKeys))
	}
	return errors.Join(errs...)
}

// hookRequest is what a webhook header offers: the MAC input prefix, the timestamp
// and the candidate signatures.
type hookRequest struct {
	prefix [8]string // written before the body
	ts     int64
	hasTS  bool
	sigs   [maxCandidates][sha256.Size]byte
	n      int
}

func (a *Authenticator) authenticateWebhook(ctx context.Context, r *engine.Request) (*engine.Identity, error) {
	vals := r.Header[a.hook.header]
	if len(vals) == 0 {
		return nil, engine.ErrNoCredentials
	}
	var hr hookRequest
	if len(vals) > 1 || !a.parseWebhook(&hr, vals[0], r) {
		return nil, a.deny(rMalformed)
	}
	switch {
	case !r.HasBody:
		return nil, a.deny(rBodyMissing)
	case r.BodyTruncated:
		return nil, a.deny(rBodyTruncated)
	}
	now := a.now()
	if hr.hasTS {
		age := now.Sub(time.Unix(hr.ts, 0))
		if age > a.hook.tolerance || age < -a.hook.tolerance {
			return nil, a.deny(rExpired)
		}
	}
	k, signed := a.matchWebhook(&hr, r.Body)
	if k == nil {
		return nil, a.deny(rBadSignature)
	}
	var ttl time.Duration
	switch {
	case hr.hasTS:
		ttl = time.Unix(hr.ts, 0).Add(a.hook.tolerance).Sub(now)
	case a.hook.ghReplay > 0:
		ttl = a.hook.ghReplay
	default:
		return k.identity, nil // GitHub without a replay window
	}
	// The delivery, not the matching MAC, is what may arrive once: during a secret
	// rotation a delivery carries one MAC per secret, and any one of them verifies.
	key := a.name + ":" + string(a.scheme) + ":" + strconv.FormatInt(hr.ts, 10) + ":" + hex.EncodeToString(signed[:])
	if err := a.remember(ctx, key, ttl); err != nil {
		return nil, err
	}
	return k.identity, nil
}

// matchWebhook returns the key whose MAC equals one of the candidates, comparing in
// constant time, and the SHA-256 of the signed data (prefix and body), which
// identifies the delivery for replay detection whichever secret signed it.
func (a *Authenticator) matchWebhook(hr *hookRequest, body []byte) (*hookKey, [sha256.Size]byte) {
	var sum [sha256.Size]byte
	prefix := make([]byte, 0, 128)
	for _, p := range hr.prefix {
		prefix = append(prefix, p...)
	}
	for i := range a.hookKeys {
		k := &a.hookKeys[i]
		h := k.mac()
		h.Write(prefix)
		h.Write(body)
		mac := h.Sum(sum[:0])
		k.macs.Put(h)
		for j := 0; j < hr.n; j++ {
			if hmac.Equal(mac, hr.sigs[j][:]) {
				d := sha256.New()
				d.Write(prefix)
				d.Write(body)
				var signed [sha256.Size]byte
				d.Sum(signed[:0])
				return k, signed
			}
		}
	}
	return nil, sum
}

// parseWebhook reads the scheme's signature (and timestamp) into hr.
func (a *Authenticator) parseWebhook(hr *hookRequest, v string, r *engine.Request) bool {
	switch a.scheme {
	case SchemeGitHub:
		return hr.addHex(v, "sha256=")
	case SchemeStripe:
		return hr.parseStripe(v)
	}
	ts := r.Header[a.hook.tsHeader]
	if len(ts) != 1 || !hr.setTimestamp(ts[0]) {
		return false
	}
	if a.scheme == SchemeSlack {
		hr.prefix = [8]string{"v0:", ts[0], ":"}
		return hr.addHex(v, "v0=")
	}
	// The target ends at a newline, which no request target can hold: with a "."
	// there, "/pay?amount=1.5" and an empty body signed the same bytes as
	// "/pay?amount=1" and the body "5." (found by a second reader's review).
	hr.prefix = [8]string{ts[0], ".", r.Method, ".", r.RawPath, "", "", "\n"}
	if r.RawQuery != "" {
		hr.prefix[5], hr.prefix[6] = "?", r.RawQuery
	}
	return hr.addHex(v, "sha256=")
}

// addHex decodes "<prefix><64 hex digits>" as a candidate signature.
func (hr *hookRequest) addHex(v, prefix string) bool {
	h, ok := strings.CutPrefix(v, prefix)
	if !ok || len(h) != 2*sha256.Size || hr.n == maxCandidates {
		return false
	}
	if _, err := hex.Decode(hr.sigs[hr.n][:], []byte(h)); err != nil {
		return false
	}
	hr.n++
	return true
}

// setTimestamp parses Unix seconds: 1 to 12 ASCII digits.
func (hr *hookRequest) setTimestamp(s string) bool {
	if s == "" || len(s) > 12 || hr.hasTS {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	hr.ts, _ = strconv.ParseInt(s, 10, 64)
	hr.hasTS = true
	return true
}

// parseStripe reads "t=<unix>,v1=<hex>[,v1=<hex>...]"; other schemes (v0) are
// ignored. It needs exactly one t and at least one well-formed v1, and takes at most
// maxCandidates v1 entries.
func (hr *hookRequest) parseStripe(v string) bool {
	var t string
	for rest := v; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return false
		}
		switch k {
		case "t":
			if !hr.setTimestamp(val) {
				return false
			}
			t = val
		case "v1":
			// A v1 that is not 64 hex digits cannot match; like Stripe's
			// libraries, ignore it rather than reject the header.
			if hr.n == maxCandidates {
				return false
			}
			hr.addHex(val, "")
		}
	}
	hr.prefix = [8]string{t, "."}
	return hr.hasTS && hr.n > 0
}

// SignGitHub returns the X-Hub-Signature-256 value GitHub sends for body.
func SignGitHub(secret, body []byte) string {
	return "sha256=" + macHex(secret, body)
}

// SignStripe returns the Stripe-Signature value for body at Unix time t.
func SignStripe(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	return "t=" + ts + ",v1=" + macHex(secret, []byte(ts+"."), body)
}

// SignSlack returns the X-Slack-Signature value for body at Unix time ts (sent with
// X-Slack-Request-Timestamp: ts).
func SignSlack(secret []byte, ts int64, body []byte) string {
	return "v0=" + macHex(secret, []byte("v0:"+strconv.FormatInt(ts, 10)+":"), body)
}

// SignGeneric returns the X-Signature value of the generic scheme (sent with
// X-Timestamp: ts). target is the raw path plus "?query" when there is one.
func SignGeneric(secret []byte, ts int64, method, target string, body []byte) string {
	prefix := strconv.FormatInt(ts, 10) + "." + method + "." + target + "\n"
	return "sha256=" + macHex(secret, []byte(prefix), body)
}

func macHex(secret []byte, parts ...[]byte) string {
	h := hmac.New(sha256.New, secret)
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
