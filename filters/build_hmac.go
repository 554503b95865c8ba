package filters

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/hmac"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// buildHMAC compiles an hmac stage. It resolves the provider's secrets and public keys
// (a problem is reported at the key's line, never with the value), builds the
// authenticator with the process's store as its replay set, so replicas sharing a
// store reject each other's replays, and makes the pipeline read the body up to the
// provider's limit and challenge with "Signature" for RFC 9421.
func buildHMAC(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.HMACStage)
	prov, i, ok := b.doc.Providers.HMAC.ByName(spec.Provider)
	if !ok {
		return nil, nil, fmt.Errorf("unknown hmac provider %q", spec.Provider)
	}
	path := fmt.Sprintf("providers.hmac[%d]", i)
	unusable := fmt.Errorf("hmac provider %q cannot be used (see %s)", prov.Name, path)
	clients, ok := b.hmacClients(path, prov)
	defer wipeSecrets(clients)
	if !ok {
		return nil, nil, unusable
	}
	o := hmac.Options{
		Name: prov.Name, Scheme: hmac.Scheme(prov.Scheme), Clients: clients,
		Header: prov.Header, TimestampHeader: prov.TimestampHeader, Tolerance: prov.Tolerance,
		BodyLimit: prov.BodyLimit, GitHubReplayWindow: prov.ReplayWindow, Now: b.deps.Now,
	}
	if prov.Scheme == config.HMACSchemeRFC9421 {
		o.Policy = hmacPolicy(&prov.Policy)
	}
	if prov.Replay {
		o.Replay = b.deps.Store
	} else {
		o.DisableReplay = true
	}
	a, err := hmac.New(o)
	if err != nil {
		b.errorOnce(path, "%s", strings.TrimPrefix(err.Error(), "hmac "+prov.Name+": "))
		return nil, nil, unusable
	}
	p.BodyLimit = max(p.BodyLimit, a.BodyLimit())
	if a.Scheme() == hmac.SchemeRFC9421 {
		p.Challenges = append(p.Challenges, "Signature")
	}
	return nil, a, nil
}

// hmacClients resolves every key of prov. Problems are reported at their paths (once,
// however many stages use the provider); ok is false when there was any.
func (b *builder) hmacClients(path string, prov *config.HMACProvider) (clients []hmac.Client, ok bool) {
	ok = true
	clients = make([]hmac.Client, len(prov.Clients))
	for i := range prov.Clients {
		c := &prov.Clients[i]
		clients[i] = hmac.Client{Subject: c.Subject, Scopes: slices.Clone(c.Scopes), Keys: make([]hmac.Key, 0, len(c.Keys))}
		for j := range c.Keys {
			kp := fmt.Sprintf("%s.clients[%d].keys[%d]", path, i, j)
			k, err := hmacKey(&c.Keys[j])
			if err != nil {
				b.errorOnce(kp+"."+err.field, "%v", err.err)
				ok = false
				continue
			}
			clients[i].Keys = append(clients[i].Keys, k)
		}
	}
	return clients, ok
}

// keyError is a problem with one field of a key.
type keyError struct {
	field string // "secret" or "public_key"
	err   error
}

// hmacKey resolves one key: the secret of hmac-sha256, or the public key of the
// asymmetric algorithms.
func hmacKey(k *config.HMACKey) (hmac.Key, *keyError) {
	alg := httpsig.Algorithm(k.Algorithm)
	key := hmac.Key{ID: k.ID, Algorithm: alg}
	if alg == httpsig.HMACSHA256 {
		secret, err := k.Secret.Resolve()
		if err != nil {
			return key, &keyError{"secret", err}
		}
		if len(secret) < httpsig.MinHMACKeyBytes {
			clear(secret)
			return key, &keyError{"secret", fmt.Errorf("secret %s is shorter than %d bytes", k.Secret.Ref(), httpsig.MinHMACKeyBytes)}
		}
		key.Secret = secret
		return key, nil
	}
	data, err := k.PublicKey.Resolve()
	if err != nil {
		return key, &keyError{"public_key", err}
	}
	pub, err := parsePublicKeyPEM(data)
	if err == nil {
		_, err = httpsig.NewPublicKey(k.ID, alg, pub) // the key suits the algorithm
	}
	if err != nil {
		return key, &keyError{"public_key", fmt.Errorf("%s: %w", k.PublicKey.Ref(), err)}
	}
	key.PublicKey = pub
	return key, nil
}

// parsePublicKeyPEM parses one PEM public key: PKIX "PUBLIC KEY" or PKCS#1 "RSA PUBLIC
// KEY". A private key is refused: a verifier never needs one, and a private key in the
// sidecar's configuration could sign requests.
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return nil, errors.New("not a PEM public key")
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, errors.New("holds a private key; configure the public key only")
	case block.Type == "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		return pub, nil
	case block.Type == "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse RSA public key: %w", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported PEM block %q: expected PUBLIC KEY or RSA PUBLIC KEY", block.Type)
}

// hmacPolicy translates the RFC 9421 policy; zero values keep httpsig's defaults.
func hmacPolicy(c *config.HMACPolicy) httpsig.Policy {
	p := httpsig.Policy{
		Required:  slices.Clone(c.RequiredComponents), // nil: the default; empty: none
		MaxAge:    c.MaxAge,
		ClockSkew: c.ClockSkew, CreatedOptional: c.CreatedOptional,
		RequireExpires: c.RequireExpires, RequireNonce: c.RequireNonce,
		Tag: c.Tag, Label: c.Label,
	}
	switch c.DigestRequired {
	case config.DigestAlways:
		p.DigestRequired = httpsig.DigestAlways
	case config.DigestOptional:
		p.DigestRequired = httpsig.DigestOptional
	default:
		p.DigestRequired = httpsig.DigestIfBody
	}
	for _, a := range c.DigestAlgorithms {
		p.DigestAlgorithms = append(p.DigestAlgorithms, httpsig.DigestAlgorithm(a))
	}
	for _, a := range c.Algorithms {
		p.Algorithms = append(p.Algorithms, httpsig.Algorithm(a))
	}
	return p
}

// wipeSecrets clears the resolved secrets once the authenticator holds its own copies.
func wipeSecrets(clients []hmac.Client) {
	for i := range clients {
		for j := range clients[i].Keys {
			clear(clients[i].Keys[j].Secret)
		}
	}
}

// errorOnce records a problem unless the same one is already recorded (a provider used
// by several stages is compiled for each).
func (b *builder) errorOnce(path, format string, args ...any) {
	e := b.doc.Errorf(path, format, args...)
	for _, x := range b.errs {
		if *x == *e {
			return
		}
	}
	b.errs = append(b.errs, e)
}
