package telemetry

import "github.com/prometheus/client_golang/prometheus"

// WebSocketMetrics counts WebSocket connections the proxy closed because a client
// broke a message limit or the protocol. Reasons are the proxy's fixed set ("size",
// "rate", "protocol"), so cardinality is bounded.
type WebSocketMetrics struct {
	closed *prometheus.CounterVec
	known  map[string]prometheus.Counter // resolved once: read-only after construction
}

// NewWebSocketMetrics registers the WebSocket metrics on reg.
func NewWebSocketMetrics(reg prometheus.Registerer) *WebSocketMetrics {
	m := &WebSocketMetrics{
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_websocket_closed_total",
			Help: "WebSocket connections closed by the proxy, by reason (size|rate: 1008, protocol: 1002).",
		}, []string{"reason"}),
		known: map[string]prometheus.Counter{},
	}
	for _, r := range []string{"size", "rate", "protocol"} {
		m.known[r] = m.closed.WithLabelValues(r)
	}
	reg.MustRegister(m.closed)
	return m
}

// Closed counts one connection closed for reason; it matches proxy's
// WebSocketOptions.OnClose.
func (m *WebSocketMetrics) Closed(reason string) {
	if c, ok := m.known[reason]; ok {
		c.Inc()
		return
	}
	m.closed.WithLabelValues(reason).Inc()
}
