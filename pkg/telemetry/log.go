// Package telemetry builds Portcullis's logs and metrics: the zap JSON logger, the
// one-line-per-request decision log, the audit log, request ids, and the Prometheus
// registry that records decisions. Secrets never reach it: decision lines carry codes,
// names and ids, never header values or credentials.
package telemetry

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis/portcullis/pkg/engine"
)

// NewLogger returns a JSON logger at level ("debug", "info", "warn", "error") writing to
// stderr through a small buffer, flushed every second and by Sync, so a decision line
// per request does not cost a write system call each.
func NewLogger(level string) (*zap.Logger, error) {
	l, _, err := NewLoggerOutput(level)
	return l, err
}

// Output is the line stream under the zap logger, for the decision log's fast path
// (NewDecisionLogTo): the same buffered writer and level, so its lines interleave with
// zap's in one JSON stream.
type Output struct {
	ws    zapcore.WriteSyncer
	level zapcore.LevelEnabler
}

// NewLoggerOutput is NewLogger that also returns its Output.
func NewLoggerOutput(level string) (*zap.Logger, *Output, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", level, err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.Lock(os.Stderr), Size: 64 << 10, FlushInterval: time.Second}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), ws, lvl)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr))), &Output{ws: ws, level: lvl}, nil
}

// DecisionLog writes one structured line per decision. Allowed requests log at info,
// denied ones at info too (with reason); the audit log carries denies separately.
type DecisionLog struct {
	log    *zap.Logger
	out    *Output // when set, lines are encoded directly (decisionline.go)
	allows bool    // log allowed requests
	denies bool    // log denied requests
}

// NewDecisionLog returns a decision logger named "decision" that logs every decision.
func NewDecisionLog(l *zap.Logger) *DecisionLog {
	return &DecisionLog{log: l.Named("decision"), allows: true, denies: true}
}

// NewDecisionLogFor returns a decision logger for the log.decisions setting: "all",
// "denies" or "none".
func NewDecisionLogFor(l *zap.Logger, which string) *DecisionLog {
	d := NewDecisionLog(l)
	d.allows = which == "all"
	d.denies = which == "all" || which == "denies"
	return d
}

// Log writes the decision line for r and d from the given front-end ("proxy",
// "extauthz", "forwardauth", "rls"). It does nothing when info is disabled.
func (l *DecisionLog) Log(frontend string, r *engine.Request, d *engine.Decision) {
	if d.Allow && !l.allows || !d.Allow && !l.denies {
		return
	}
	if l.out != nil {
		l.writeLine(frontend, r, d)
		return
	}
	ce := l.log.Check(zapcore.InfoLevel, "decision")
	if ce == nil {
		return
	}
	subject, method := "", ""
	if d.Identity != nil {
		subject, method = d.Identity.Subject, d.Identity.Method
	}
	ce.Write(
		zap.String("frontend", frontend),
		zap.String("request_id", r.ID),
		zap.Bool("allow", d.Allow),
		zap.Int("status", d.Status),
		zap.String("reason", d.Reason),
		zap.String("decided_by", d.DecidedBy),
		zap.String("route", d.Route),
		zap.String("method", r.Method),
		zap.String("host", r.Host),
		zap.String("path", r.Path),
		zap.Stringer("client_ip", r.Peer.IP),
		zap.String("subject", subject),
		zap.String("auth", method),
		zap.Duration("elapsed", d.Elapsed),
	)
}

// Audit writes security events (denies, bans, revocations, config changes) to their own
// logger, named "audit", so they can be shipped and retained apart from access lines.
type Audit struct{ log *zap.Logger }

// NewAudit returns an audit logger.
func NewAudit(l *zap.Logger) *Audit { return &Audit{log: l.Named("audit")} }

// Deny records a denied request: who, what, why. Never credentials.
func (a *Audit) Deny(frontend string, r *engine.Request, d *engine.Decision) {
	a.log.Warn("deny",
		zap.String("event", "deny"),
		zap.String("frontend", frontend),
		zap.String("request_id", r.ID),
		zap.Int("status", d.Status),
		zap.String("reason", d.Reason),
		zap.String("decided_by", d.DecidedBy),
		zap.String("route", d.Route),
		zap.String("method", r.Method),
		zap.String("path", r.Path),
		zap.Stringer("client_ip", r.Peer.IP),
		zap.Strings("stripped_identity_headers", r.StrippedIdentityHeaders()),
	)
}

// ConfigChange records a configuration load or reload attempt and its outcome.
func (a *Audit) ConfigChange(source, version string, err error) {
	if err != nil {
		a.log.Error("config rejected", zap.String("event", "config_rejected"),
			zap.String("source", source), zap.Error(err))
		return
	}
	a.log.Info("config applied", zap.String("event", "config_applied"),
		zap.String("source", source), zap.String("version", version))
}

// Event records another security event (ban, revoke, level change) with its fields.
func (a *Audit) Event(event string, fields ...zap.Field) {
	a.log.Warn(event, append([]zap.Field{zap.String("event", event)}, fields...)...)
}
