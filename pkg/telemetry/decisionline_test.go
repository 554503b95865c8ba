package telemetry

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis/portcullis/pkg/engine"
)

// The directly encoded line has exactly the keys and values zap writes for the same
// decision (timestamps aside).
func TestDecisionLineMatchesZap(t *testing.T) {
	r := &engine.Request{ID: "rid-\"1\"", Method: "GET", Host: "api.example.com", Path: "/a b/<c>",
		Peer: engine.Peer{IP: netip.MustParseAddr("2001:db8::1")}}
	for _, d := range []*engine.Decision{
		{Allow: true, Status: 200, Route: "api", Elapsed: 12345 * time.Nanosecond,
			Identity: &engine.Identity{Subject: "alice\x00", Method: "apikey"}},
		{Status: 401, Reason: "auth.missing", DecidedBy: "authenticate", Route: "api", Elapsed: time.Millisecond},
	} {
		var zapOut bytes.Buffer
		enc := zap.NewProductionEncoderConfig()
		enc.TimeKey = "ts"
		enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(&zapOut), zapcore.InfoLevel))
		NewDecisionLog(zl).Log("extauthz", r, d)

		var fastOut bytes.Buffer
		fast := NewDecisionLogTo(&Output{ws: zapcore.AddSync(&fastOut), level: zapcore.InfoLevel}, zl, "all")
		fast.Log("extauthz", r, d)

		var a, b map[string]any
		if err := json.Unmarshal(zapOut.Bytes(), &a); err != nil {
			t.Fatalf("zap line %q: %v", zapOut.String(), err)
		}
		if err := json.Unmarshal(fastOut.Bytes(), &b); err != nil {
			t.Fatalf("fast line %q: %v", fastOut.String(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, b["ts"].(string)); err != nil {
			t.Fatalf("ts: %v", err)
		}
		delete(a, "ts")
		delete(b, "ts")
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("lines differ:\nzap:  %s\nfast: %s", zapOut.String(), fastOut.String())
		}
	}
}

func TestDecisionLineRespectsLevel(t *testing.T) {
	var out bytes.Buffer
	l := NewDecisionLogTo(&Output{ws: zapcore.AddSync(&out), level: zapcore.WarnLevel}, zap.NewNop(), "all")
	l.Log("proxy", &engine.Request{}, &engine.Decision{Allow: true})
	if out.Len() != 0 {
		t.Fatalf("info line written at warn level: %q", out.String())
	}
}

func BenchmarkDecisionLine(b *testing.B) {
	r := &engine.Request{ID: "b1b2c3d4-0000-4000-8000-000000000001", Method: "GET", Host: "api.example.com",
		Path: "/api/items", Peer: engine.Peer{IP: netip.MustParseAddr("10.1.2.3")}}
	d := &engine.Decision{Allow: true, Status: 200, Route: "api", Elapsed: 12 * time.Microsecond,
		Identity: &engine.Identity{Subject: "demo", Method: "apikey"}}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(discard{}), zapcore.InfoLevel))
	b.Run("zap", func(b *testing.B) {
		l := NewDecisionLog(zl)
		b.ReportAllocs()
		for b.Loop() {
			l.Log("extauthz", r, d)
		}
	})
	b.Run("direct", func(b *testing.B) {
		l := NewDecisionLogTo(&Output{ws: zapcore.AddSync(discard{}), level: zapcore.InfoLevel}, zl, "all")
		b.ReportAllocs()
		for b.Loop() {
			l.Log("extauthz", r, d)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
