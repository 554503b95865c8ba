package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestWebSocketMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewWebSocketMetrics(reg)
	if got := gathered(t, reg)["portcullis_websocket_closed_total{reason=size}"]; got != 0 {
		t.Errorf("size before any close = %v", got)
	}
	m.Closed("size")
	m.Closed("rate")
	m.Closed("rate")
	m.Closed("protocol")
	m.Closed("other")
	got := gathered(t, reg)
	for k, v := range map[string]float64{
		"portcullis_websocket_closed_total{reason=size}":     1,
		"portcullis_websocket_closed_total{reason=rate}":     2,
		"portcullis_websocket_closed_total{reason=protocol}": 1,
		"portcullis_websocket_closed_total{reason=other}":    1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.Closed("rate") }); n != 0 {
		t.Errorf("Closed allocates %v times", n)
	}
}
