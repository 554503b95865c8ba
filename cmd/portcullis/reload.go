package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/config"
)

// reloader applies configuration changes: build, validate, swap atomically, and keep
// the running configuration on any error. It polls the file's content (a Kubernetes
// ConfigMap update is an atomic symlink swap that file-event watchers often miss) and
// also reloads on SIGHUP.
type reloader struct {
	s       *server
	mu      sync.Mutex // serializes applies
	hash    [sha256.Size]byte
	running *config.Document
}

// apply compiles doc and swaps it in. On error nothing changes.
func (s *server) apply(doc *config.Document) error {
	return s.reload.apply(doc)
}

// apply compiles doc and swaps it in; the running version is doc.Digest, the content
// doc was parsed from (a second read of the file could see a newer one, which the poll
// would then never load).
func (r *reloader) apply(doc *config.Document) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	sum := doc.Digest
	version := hex.EncodeToString(sum[:6])
	compiled, err := s.compile(doc) // state.go: the shared store and RLS survive reloads
	if err != nil {
		s.metrics.Reloaded(version, err)
		s.audit.ConfigChange(doc.Source, version, err)
		return err
	}
	if r.running != nil {
		warnRestartOnly(s.log, r.running, doc)
	}
	checks := []readyCheck{{name: "config", check: func() error { return nil }}}
	for _, c := range compiled.Checks {
		checks = append(checks, readyCheck{name: c.Name, check: c.Check})
	}
	old := s.engine.Swap(compiled.Table)
	s.state.setRLS(doc)
	s.admin.setChecks(checks)
	r.hash, r.running = sum, doc
	if old != nil {
		// In-flight decisions finish on the old table; release its resources later.
		time.AfterFunc(doc.Server.ShutdownTimeout, func() { _ = old.Close() })
	}
	s.metrics.Reloaded(version, nil)
	s.audit.ConfigChange(doc.Source, version, nil)
	return nil
}

// warnRestartOnly logs the sections a reload cannot apply: listeners, upstream and
// server limits are bound when the process starts.
func warnRestartOnly(log *zap.Logger, old, cur *config.Document) {
	for name, pair := range map[string][2]any{
		"listeners": {old.Listeners, cur.Listeners}, "upstream": {old.Upstream, cur.Upstream},
		"server": {old.Server, cur.Server}, "network": {old.Network, cur.Network}, "log": {old.Log, cur.Log},
		"store": {old.Store, cur.Store},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			log.Warn("config section changed; it takes effect at the next restart", zap.String("section", name))
		}
	}
}

// check reloads when the file's content differs from the running one.
func (r *reloader) check(force bool) {
	s := r.s
	path := s.boot.ConfigPath()
	data, err := os.ReadFile(path)
	if err != nil {
		s.log.Warn("config unreadable; keeping the running configuration", zap.Error(err))
		return
	}
	r.mu.Lock()
	same := sha256.Sum256(data) == r.hash
	r.mu.Unlock()
	if same && !force {
		return
	}
	doc, err := s.boot.Load()
	if err == nil {
		if err = r.apply(doc); err != nil {
			r.mu.Lock()
			r.hash = doc.Digest // report a document that does not compile once, not at every poll
			r.mu.Unlock()
		}
	} else {
		sum := sha256.Sum256(data)
		s.metrics.Reloaded(hex.EncodeToString(sum[:6]), err)
		s.audit.ConfigChange(path, hex.EncodeToString(sum[:6]), err)
		r.mu.Lock()
		r.hash = sum // report a broken file once, not at every poll
		r.mu.Unlock()
	}
	if err != nil {
		s.log.Error("config reload rejected; keeping the running configuration", zap.Error(err))
		return
	}
	s.log.Info("config reloaded", zap.String("config", path))
}

// watch polls every interval (0: never) and reloads on SIGHUP until ctx ends.
func (r *reloader) watch(ctx context.Context, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			r.check(false)
		case <-hup:
			r.check(true)
		}
	}
}
