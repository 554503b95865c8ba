package telemetry

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis/portcullis/pkg/engine"
)

func TestDecisionLogModes(t *testing.T) {
	allow := &engine.Decision{Allow: true, Status: 200, Identity: &engine.Identity{Subject: "alice", Method: "apikey"}}
	deny := &engine.Decision{Status: 401, Reason: "apikey.invalid"}
	for _, tc := range []struct {
		mode        string
		allow, deny int
	}{{"all", 1, 1}, {"denies", 0, 1}, {"none", 0, 0}} {
		core, logs := observer.New(zap.InfoLevel)
		l := NewDecisionLogFor(zap.New(core), tc.mode)
		r := &engine.Request{ID: "rid", Method: "GET", Path: "/x",
			Header: http.Header{"Authorization": {"Bearer pk_secret_value"}}}
		l.Log("proxy", r, allow)
		l.Log("proxy", r, deny)
		var a, d int
		for _, e := range logs.All() {
			if e.ContextMap()["allow"] == true {
				a++
			} else {
				d++
			}
			for k, v := range e.ContextMap() {
				if s, ok := v.(string); ok && strings.Contains(s, "pk_secret") {
					t.Fatalf("credential logged in field %s", k)
				}
			}
		}
		if a != tc.allow || d != tc.deny {
			t.Errorf("%s: %d allow and %d deny lines, want %d and %d", tc.mode, a, d, tc.allow, tc.deny)
		}
	}
}

func TestRequestID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{"b1b2c3d4-0000-4000-8000-000000000001", true},
		{"envoy:abc/123+=_.", true},
		{"", false},
		{"has space", false},
		{"inject\r\nx: y", false},
		{`quote"`, false},
		{strings.Repeat("a", MaxRequestIDLen+1), false},
	} {
		got := RequestID(tc.in)
		if (got == tc.in) != tc.keep {
			t.Errorf("RequestID(%q) = %q, keep=%v", tc.in, got, tc.keep)
		}
		if !ValidRequestID(got) {
			t.Errorf("generated id %q is not valid", got)
		}
	}
	if a, b := NewRequestID(), NewRequestID(); a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestMetricsDecidedDoesNotAllocateForKnownLabels(t *testing.T) {
	m := NewMetrics()
	d := &engine.Decision{Allow: true, Route: "api"}
	m.Decided(nil, d)
	if n := testing.AllocsPerRun(100, func() { m.Decided(nil, d) }); n != 0 {
		t.Fatalf("Decided allocates %v times", n)
	}
}
