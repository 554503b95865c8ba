package hmac

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/httpsig"
)

// Authenticator verifies request signatures of one scheme. It is immutable after New
// and safe for concurrent use.
type Authenticator struct {
	name      string
	scheme    Scheme
	bodyLimit int64
	now       func() time.Time
	replay    OnceSet // nil: replay detection off

	// RFC 9421
	verifier   *httpsig.Verifier
	identities map[string]*engine.Identity // keyid -> identity

	// webhooks
	hook     webhook
	hookKeys []hookKey
}

var _ engine.Authenticator = (*Authenticator)(nil)

// New validates the options and builds the authenticator. Every problem is reported.
func New(o Options) (*Authenticator, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Scheme == "" {
		o.Scheme = SchemeRFC9421
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = DefaultBodyLimit
	}
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Authenticator{name: o.Name, scheme: o.Scheme, bodyLimit: o.BodyLimit, now: o.Now}
	if !o.DisableReplay {
		a.replay = o.Replay
		if a.replay == nil {
			a.replay = NewMemoryOnceSet(DefaultReplayCapacity, o.Now)
		}
	}
	var err error
	if o.Scheme == SchemeRFC9421 {
		err = a.buildRFC9421(&o)
	} else {
		err = a.buildWebhook(&o)
	}
	if err != nil {
		return nil, fmt.Errorf("hmac %s: %w", o.Name, err)
	}
	return a, nil
}

// BodyLimit returns how many body bytes a front-end must read for this
// authenticator (engine.Pipeline.BodyLimit).
func (a *Authenticator) BodyLimit() int64 { return a.bodyLimit }

// Scheme returns the scheme the authenticator verifies.
func (a *Authenticator) Scheme() Scheme { return a.scheme }

// Authenticate implements engine.Authenticator. It returns engine.ErrNoCredentials
// when the request carries no signature of the scheme, a 401 *engine.Denial when a
// signature is present but not acceptable, and another error when the replay store
// or a key resolver fails.
func (a *Authenticator) Authenticate(ctx context.Context, r *engine.Request) (*engine.Identity, error) {
	if a.scheme == SchemeRFC9421 {
		return a.authenticateRFC9421(ctx, r)
	}
	return a.authenticateWebhook(ctx, r)
}

// identity returns the shared identity of one key of one client.
func identity(c *Client, keyID string) *engine.Identity {
	return &engine.Identity{
		Subject:      c.Subject,
		Method:       engine.AuthHMAC,
		KeyID:        keyID,
		Scopes:       c.Scopes,
		ScopesHeader: strings.Join(c.Scopes, " "),
	}
}

// validateClients checks the parts common to every scheme.
func validateClients(clients []Client) error {
	if len(clients) == 0 {
		return errors.New("no clients")
	}
	var errs []error
	owner := map[string]int{}
	for i := range clients {
		c := &clients[i]
		if c.Subject == "" {
			errs = append(errs, fmt.Errorf("clients[%d]: subject required", i))
		}
		if len(c.Keys) == 0 {
			errs = append(errs, fmt.Errorf("clients[%d]: no keys", i))
		}
		for j, k := range c.Keys {
			if k.ID == "" {
				errs = append(errs, fmt.Errorf("clients[%d].keys[%d]: id required", i, j))
				continue
			}
			if o, ok := owner[k.ID]; ok && o != i {
				errs = append(errs, fmt.Errorf("clients[%d].keys[%d]: key id %q also belongs to clients[%d]", i, j, k.ID, o))
			}
			owner[k.ID] = i
		}
	}
	return errors.Join(errs...)
}

// remember records a replay key; a repeat is a replay denial.
func (a *Authenticator) remember(ctx context.Context, key string, ttl time.Duration) error {
	if a.replay == nil {
		return nil
	}
	if ttl < time.Second {
		ttl = time.Second
	}
	first, err := a.replay.Once(ctx, key, ttl)
	if err != nil {
		return fmt.Errorf("hmac %s: replay store: %w", a.name, err)
	}
	if !first {
		return a.deny(rReplay)
	}
	return nil
}
