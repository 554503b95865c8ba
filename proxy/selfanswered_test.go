package proxy

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis/portcullis/pkg/telemetry"
)

// Requests net/http would refuse itself (no Host on HTTP/1.1, a bad escape in the
// target, a malformed Host, an Expect other than 100-continue) were answered without
// the handler: no decision line, no audit event, no JSON body, no request id (found by
// a second reader's review). The raw scanner refuses them, so each is decided.
func TestRequestsNetHTTPWouldRefuseAreDecided(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	logger := zap.New(core)
	h := startProxy(t, func(o *Options) {
		o.Log = telemetry.NewDecisionLog(logger)
		o.Audit = telemetry.NewAudit(logger)
	})
	for _, raw := range []string{
		"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n",              // no Host
		"GET /public/%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", // bad escape
		"GET /public/x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", // bad Host
		"POST /public/x HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
	} {
		before := len(logs.FilterLoggerName("decision").All())
		rs := h.send(t, raw)
		after := len(logs.FilterLoggerName("decision").All())
		if after != before+1 || len(rs) != 1 || rs[0].Header.Get("X-Request-Id") == "" || len(h.up.requests()) != 0 {
			t.Errorf("%q: statuses %v, %d decision lines (want 1), X-Request-Id %q",
				raw, statuses(rs), after-before, rs[0].Header.Get("X-Request-Id"))
		}
	}
}
