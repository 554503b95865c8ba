package filters

import (
	"context"
	"fmt"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters/ratelimit"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
)

// keyParts maps the document's key part names to the filter's.
var keyParts = map[string]ratelimit.KeyPart{
	config.KeyClientIP: ratelimit.KeyIP, config.KeyClientIPNet: ratelimit.KeyIPNet,
	config.KeySubject: ratelimit.KeySubject, config.KeyAPIKey: ratelimit.KeyAPIKey,
	config.KeyHeader: ratelimit.KeyHeader, config.KeyRoute: ratelimit.KeyRoute,
	config.KeyMethod: ratelimit.KeyMethod, config.KeyPath: ratelimit.KeyPath,
}

func buildRateLimit(b *builder, st *config.Stage, _ *engine.Pipeline) (engine.Filter, engine.Authenticator, error) {
	spec := st.Spec.(*config.RateLimitStage)
	o := ratelimit.Options{Stage: st.Kind, HeadersOnAllow: spec.HeadersOnAllow}
	for _, l := range spec.Limits {
		policy, err := store.ParsePolicy(l.OnStoreError)
		if err != nil {
			return nil, nil, fmt.Errorf("limit %s: %w", l.Name, err)
		}
		lo := ratelimit.LimitOptions{Name: l.Name, Rate: l.Rate.Count, Period: l.Rate.Period,
			Burst: uint64(max(l.Burst, 0)), Shadow: l.Shadow, Limiter: b.limiter(policy)}
		for _, kp := range l.Key {
			part, ok := keyParts[kp.Kind]
			if !ok {
				return nil, nil, fmt.Errorf("limit %s: unknown key part %q", l.Name, kp.Kind)
			}
			lo.Key = append(lo.Key, part)
			if part == ratelimit.KeyHeader {
				lo.Header = kp.Header
			}
		}
		o.Limits = append(o.Limits, lo)
	}
	f, err := ratelimit.New(o)
	if err != nil {
		return nil, nil, err
	}
	if b.deps.OnRateLimited == nil {
		return f, nil, nil
	}
	return reportedLimits{f: f, hit: b.deps.OnRateLimited}, nil, nil
}

// limiter returns the store limiter applying policy p (see Deps.Limiter).
func (b *builder) limiter(p store.Policy) store.Limiter {
	if b.deps.Limiter != nil {
		return b.deps.Limiter(p)
	}
	if g, ok := b.deps.Store.(*store.Guard); ok {
		return g.Limiter(p)
	}
	return b.deps.Store
}

// reportedLimits reports every limit a request exceeds to hit, after the filter ran.
type reportedLimits struct {
	f   *ratelimit.Filter
	hit func(limit string, shadow bool)
}

func (r reportedLimits) Check(ctx context.Context, req *engine.Request, d *engine.Decision) error {
	first := len(d.Limits)
	err := r.f.Check(ctx, req, d)
	for _, s := range d.Limits[first:] {
		if s.Over {
			r.hit(s.Name, s.Shadow)
		}
	}
	return err
}
