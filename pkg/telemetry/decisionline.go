package telemetry

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis/portcullis/pkg/engine"
)

// NewDecisionLogTo returns a decision logger (like NewDecisionLogFor) that encodes its
// fixed-shape line directly onto out instead of through zap's field encoder: the same
// JSON keys and values, a fraction of the CPU. Profiled at 64 concurrent ext_authz
// streams, zap's generic encoding of the 14 fields was ~7% of the server's CPU.
func NewDecisionLogTo(out *Output, l *zap.Logger, which string) *DecisionLog {
	d := NewDecisionLogFor(l, which)
	d.out = out
	return d
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeLine writes the decision line zap would write for the same fields.
func (l *DecisionLog) writeLine(frontend string, r *engine.Request, d *engine.Decision) {
	if !l.out.level.Enabled(zapcore.InfoLevel) {
		return
	}
	bp := lineBufs.Get().(*[]byte)
	b := appendDecisionLine((*bp)[:0], time.Now(), frontend, r, d)
	_, _ = l.out.ws.Write(b) // a failed log write has nowhere better to go
	*bp = b
	lineBufs.Put(bp)
}

func appendDecisionLine(b []byte, now time.Time, frontend string, r *engine.Request, d *engine.Decision) []byte {
	subject, method := "", ""
	if d.Identity != nil {
		subject, method = d.Identity.Subject, d.Identity.Method
	}
	b = append(b, `{"level":"info","ts":"`...)
	b = appendRFC3339Nano(b, now)
	b = append(b, `","logger":"decision","msg":"decision","frontend":`...)
	b = appendJSONString(b, frontend)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"allow":`...)
	b = strconv.AppendBool(b, d.Allow)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(d.Status), 10)
	b = appendField(b, "reason", d.Reason)
	b = appendField(b, "decided_by", d.DecidedBy)
	b = appendField(b, "route", d.Route)
	b = appendField(b, "method", r.Method)
	b = appendField(b, "host", r.Host)
	b = appendField(b, "path", r.Path)
	b = append(b, `,"client_ip":"`...)
	if r.Peer.IP.IsValid() {
		b = r.Peer.IP.AppendTo(b)
	} else {
		b = append(b, "invalid IP"...)
	}
	b = append(b, '"')
	b = appendField(b, "subject", subject)
	b = appendField(b, "auth", method)
	b = append(b, `,"elapsed":`...)
	b = strconv.AppendFloat(b, d.Elapsed.Seconds(), 'f', -1, 64)
	return append(b, "}\n"...)
}

func appendField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

// tsSecond is one second's RFC 3339 text, split around the fraction: the date and
// time ("2006-01-02T15:04:05") and the zone ("Z" or "-07:00").
type tsSecond struct {
	unix  int64
	loc   *time.Location
	clock string
	zone  string
}

// lastSecond caches the second of the last timestamp written: decision lines come many
// per second, and formatting the date, time and zone was half of the timestamp's cost.
var lastSecond atomic.Pointer[tsSecond]

// appendRFC3339Nano appends t as t.AppendFormat(b, time.RFC3339Nano) does, with the
// seconds part taken from lastSecond when t falls in the same second and location.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	s := lastSecond.Load()
	if s == nil || s.unix != sec || s.loc != loc {
		// Years outside 0-9999 are formatted by the standard library as they are.
		if y := t.Year(); y < 0 || y > 9999 {
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		s = &tsSecond{unix: sec, loc: loc, clock: t.Format("2006-01-02T15:04:05"), zone: t.Format("Z07:00")}
		lastSecond.Store(s)
	}
	b = append(b, s.clock...)
	if ns := t.Nanosecond(); ns != 0 {
		// RFC3339Nano's fraction: nine digits with the trailing zeros dropped.
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}
