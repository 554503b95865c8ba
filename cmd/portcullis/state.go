package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters"
	"github.com/portcullis/portcullis/filters/bruteforce"
	"github.com/portcullis/portcullis/filters/jwt"
	"github.com/portcullis/portcullis/pkg/rls"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/telemetry"
	"github.com/portcullis/portcullis/pkg/valkeystore"
)

// state is the process's shared state: the store, created once from the document at
// startup so counters and bans survive reloads (a changed store section is logged and
// applied at the next restart), and the Envoy rate limit service on the gRPC
// listener, whose domains follow reloads.
type state struct {
	store   store.Store
	guard   *store.Guard // nil when the store is memory only
	closer  func()       // stops the memory store's clock and closes the Valkey connections
	rls     *rls.Server
	rlsOK   bool // rls.headers_on_ok at startup (it needs a restart)
	metrics *telemetry.StateMetrics
	jwks    *telemetry.KeyFetchMetrics
	log     *zap.Logger
	audit   *telemetry.Audit
	lastLog atomic.Int64 // unix nanoseconds of the last store error logged
}

// storeErrorLogEvery bounds how often a store error is logged (each one is counted).
const storeErrorLogEvery = 10 * time.Second

// newState creates the store and the RLS server for doc.
func newState(doc *config.Document, log *zap.Logger, audit *telemetry.Audit, reg prometheus.Registerer) (*state, error) {
	st := &state{metrics: telemetry.NewStateMetrics(reg), jwks: telemetry.NewKeyFetchMetrics(reg), log: log, audit: audit, rlsOK: doc.RLS.HeadersOnOK}
	mem := store.NewMemory(store.MemoryOptions{MaxKeys: doc.Store.Memory.MaxKeys})
	st.store, st.closer = mem, mem.Close
	if doc.Store.Shared() {
		o, err := valkeyOptions(&doc.Store.Valkey, filepath.Dir(doc.Source))
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		vs, err := valkeystore.New(o)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		st.guard = store.NewGuard(vs, mem, store.GuardOptions{Replicas: doc.Store.Replicas,
			OnError: st.storeError, OnFallback: st.storeFallback, OnState: st.storeState})
		st.store, st.closer = st.guard, func() { vs.Close(); mem.Close() }
	}
	srv, err := rls.New(rls.Options{Domains: rlsDomains(&doc.RLS), Limiter: st.limiter, HeadersOnOK: doc.RLS.HeadersOnOK,
		OnLimit: func(_, limit string, shadow bool) { st.metrics.RateLimited(limit, shadow) }})
	if err != nil {
		st.close()
		return nil, err
	}
	st.rls = srv
	log.Info("shared state", zap.Bool("valkey", doc.Store.Shared()), zap.Strings("addresses", doc.Store.Valkey.Addresses),
		zap.String("mode", doc.Store.Valkey.Mode), zap.Int("replicas", doc.Store.Replicas))
	return st, nil
}

// valkeyOptions resolves the Valkey section's secrets and TLS files.
func valkeyOptions(v *config.ValkeyStore, baseDir string) (valkeystore.Options, error) {
	o := valkeystore.Options{Mode: valkeystore.Mode(v.Mode), Addrs: v.Addresses, MasterSet: v.MasterSet,
		Username: v.Username, SentinelUsername: v.SentinelUsername, DB: v.DB, KeyPrefix: v.KeyPrefix,
		Timeout: v.Timeout, DialTimeout: v.DialTimeout, BanCacheTTL: v.BanCacheTTL}
	var err error
	if !v.Password.IsZero() {
		if o.Password, err = v.Password.Resolve(); err != nil {
			return o, err
		}
	}
	if !v.SentinelPassword.IsZero() {
		if o.SentinelPassword, err = v.SentinelPassword.Resolve(); err != nil {
			return o, err
		}
	}
	if v.TLS.Enabled {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: v.TLS.ServerName,
			InsecureSkipVerify: v.TLS.InsecureSkipVerify} // documented as for tests only
		if v.TLS.CAFile != "" {
			path := v.TLS.CAFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(baseDir, path)
			}
			pem, err := os.ReadFile(path)
			if err != nil {
				return o, fmt.Errorf("tls ca_file: %w", err)
			}
			o.TLS.RootCAs = x509.NewCertPool()
			if !o.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("tls ca_file %s: no PEM certificate", path)
			}
		}
	}
	return o, nil
}

// limiter returns the rate limiter applying failure policy p.
func (st *state) limiter(p store.Policy) store.Limiter {
	if st.guard != nil {
		return st.guard.Limiter(p)
	}
	return st.store
}

// deps are what the registry needs to build stages on this state.
func (st *state) deps() filters.Deps {
	return filters.Deps{Store: st.store, Limiter: st.limiter, OnRateLimited: st.metrics.RateLimited,
		OnBruteForce: st.bruteForce, OnStateError: st.stateError, OnKeyFetch: st.keyFetched}
}

// keyFetched counts a remote JWKS fetch and logs a failed one (the last good key set
// stays in use; /readyz fails only while a provider has no keys at all).
func (st *state) keyFetched(ev jwt.FetchEvent) {
	st.jwks.Fetched(ev.Provider, ev.Keys, ev.Err)
	if ev.Err != nil {
		st.log.Warn("jwks fetch failed; keeping the last good key set", zap.String("provider", ev.Provider),
			zap.String("url", ev.URL), zap.Int("keys", ev.Keys), zap.Duration("retry_in", ev.Next), zap.Error(ev.Err))
	}
}

// checkRLS reports whether doc's RLS domains compile, without applying them.
func (st *state) checkRLS(doc *config.Document) error {
	_, err := rls.New(rls.Options{Domains: rlsDomains(&doc.RLS), Limiter: st.limiter})
	return err
}

// setRLS applies doc's RLS domains (checked by checkRLS).
func (st *state) setRLS(doc *config.Document) {
	if err := st.rls.SetDomains(rlsDomains(&doc.RLS)); err != nil {
		st.log.Error("rls domains rejected; keeping the running ones", zap.Error(err))
	}
	if doc.RLS.HeadersOnOK != st.rlsOK {
		st.log.Warn("config section changed; it takes effect at the next restart", zap.String("section", "rls.headers_on_ok"))
	}
}

// registerRLS registers the rate limit service on g.
func (st *state) registerRLS(g *grpc.Server) { st.rls.Register(g) }

// close releases the store's connections.
func (st *state) close() {
	if st != nil && st.closer != nil {
		st.closer()
		st.closer = nil
	}
}

func (st *state) storeError(op string, err error) {
	st.metrics.StoreError(op)
	now := time.Now().UnixNano()
	last := st.lastLog.Load()
	if now-last >= int64(storeErrorLogEvery) && st.lastLog.CompareAndSwap(last, now) {
		st.log.Warn("shared store call failed", zap.String("op", op), zap.Error(err))
	}
}

func (st *state) storeFallback(op string, p store.Policy) { st.metrics.StoreFallback(op, p.String()) }

func (st *state) storeState(available bool) {
	st.metrics.StoreAvailable(available)
	if available {
		st.log.Info("shared store recovered")
		return
	}
	st.log.Error("shared store unavailable; rate limits follow on_store_error, brute-force state is kept locally")
}

func (st *state) bruteForce(ev bruteforce.Event) {
	st.metrics.BruteForceLevel(ev.Kind, ev.Level.String())
	fields := []zap.Field{zap.String("kind", ev.Kind), zap.String("key", ev.Key),
		zap.String("level", ev.Level.String()), zap.Int64("failures", ev.Failures)}
	if ev.Ban > 0 {
		st.metrics.BruteForceBan(ev.Kind)
		st.audit.Event("ban", append(fields, zap.Duration("duration", ev.Ban))...)
		return
	}
	st.audit.Event("bruteforce_level", fields...)
}

func (st *state) stateError(err error) {
	if errors.Is(err, store.ErrUnavailable) {
		return // counted by the store hooks
	}
	st.storeError("observe", err)
}

// rlsDomains converts the rls section to the service's configuration.
func rlsDomains(c *config.RLS) []rls.Domain {
	out := make([]rls.Domain, len(c.Domains))
	for i, d := range c.Domains {
		out[i] = rls.Domain{Name: d.Domain, Descriptors: rlsDescriptors(d.Descriptors)}
	}
	return out
}

func rlsDescriptors(ds []config.RLSDescriptor) []rls.Descriptor {
	if len(ds) == 0 {
		return nil
	}
	out := make([]rls.Descriptor, len(ds))
	for i, d := range ds {
		out[i] = rls.Descriptor{Key: d.Key, Value: d.Value, ShadowMode: d.ShadowMode,
			Descriptors: rlsDescriptors(d.Descriptors.List)}
		if l := d.RateLimit; l != nil {
			p, _ := store.ParsePolicy(l.OnStoreError) // validated by config
			out[i].RateLimit = &rls.RateLimit{Name: l.Name, Unit: strings.ToLower(l.Unit),
				RequestsPerUnit: l.RequestsPerUnit, Unlimited: l.Unlimited, OnStoreError: p}
		}
	}
	return out
}

// compile builds doc on the process's shared state, creating the state on the first
// call; it also checks the RLS domains, so a reload is all or nothing.
func (s *server) compile(doc *config.Document) (*filters.Compiled, error) {
	if s.state == nil {
		st, err := newState(doc, s.log, s.audit, s.metrics.Registry)
		if err != nil {
			return nil, err
		}
		s.state = st
	}
	if err := s.state.checkRLS(doc); err != nil {
		return nil, err
	}
	return filters.Build(doc, s.state.deps())
}
