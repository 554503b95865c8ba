package filters

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/apikey"
	"github.com/portcullis/portcullis/filters/bruteforce"
	"github.com/portcullis/portcullis/pkg/engine"
)

// buildBruteForce builds the stage for the inspect phase and adds the same filter to
// the pipeline's observers, where it counts the authentication failures it acts on.
func buildBruteForce(b *builder, st *config.Stage, p *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.BruteForceStage)
	f, err := bruteforce.New(bruteforce.Options{
		Counter: b.deps.Store, Bans: b.deps.Store,
		Window: spec.Window, Low: spec.Low, Medium: spec.Medium, High: spec.High, Critical: spec.Critical,
		Delay: spec.Delay, MaxDelay: spec.MaxDelay,
		BanDuration: spec.BanDuration, MaxBan: spec.MaxBan, BanMemory: spec.BanMemory,
		Allowlist: spec.Allowlist, IPv6Prefix: spec.IPv6Prefix, Status: spec.Status, CountMissing: spec.CountMissing,
		CredentialID: func(r *engine.Request) string { return pipelineCredential(p, r) },
		OnLevel:      b.deps.OnBruteForce, OnError: b.deps.OnStateError,
	})
	if err != nil {
		return nil, nil, err
	}
	p.Observers = append(p.Observers, f)
	return f, nil, nil
}

// credentialNamer is an authenticator that names the credential a request presents
// as it reads it (filters/apikey), never the secret.
type credentialNamer interface {
	CredentialID(r *engine.Request) string
}

// pipelineCredential names the credential r presents to p: as the first of p's
// authenticators that reads one from its configured sources names it, else from the
// Authorization and X-API-Key headers (credentialID). Reading it as the authenticator
// does keeps a junk Authorization header, which the API key authenticator skips, or a
// key in a query parameter or custom header, from moving the count off the key.
func pipelineCredential(p *engine.Pipeline, r *engine.Request) string {
	for i := range p.Authenticate {
		if n, ok := p.Authenticate[i].Auth.(credentialNamer); ok {
			if c := n.CredentialID(r); c != "" {
				return c
			}
		}
	}
	return credentialID(r)
}

// credentialID returns what the credential a request attempts is counted as, from
// Authorization, else X-API-Key: "apikey:<id>" for an API key (pk_<id>_<secret>: only
// the public id, so every guess at one key's secret counts against that key), "h:"
// and a SHA-256 prefix for anything else (a password, a token). Never the secret.
func credentialID(r *engine.Request) string {
	if v := r.Header.Get("Authorization"); v != "" {
		if tok, ok := bearerToken(v); ok {
			return credentialOf(tok)
		}
		return hashedCredential(v)
	}
	if v := r.Header.Get("X-Api-Key"); v != "" {
		return credentialOf(v)
	}
	return ""
}

func credentialOf(tok string) string {
	if id, ok := apiKeyID(tok); ok {
		return "apikey:" + id
	}
	return hashedCredential(tok)
}

// apiKeyID returns the id of a token shaped like an API key: the prefix, an id of
// [a-z0-9]{4,32}, '_', anything.
func apiKeyID(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, apikey.Prefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) < apikey.MinIDLen || len(id) > apikey.MaxIDLen {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	return id, true
}

func hashedCredential(v string) string {
	sum := sha256.Sum256([]byte(v))
	return "h:" + hex.EncodeToString(sum[:16])
}

// bearerToken splits "Bearer <token>" (scheme case-insensitive).
func bearerToken(v string) (string, bool) {
	const scheme = "Bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimLeft(v[len(scheme):], " "), true
}
