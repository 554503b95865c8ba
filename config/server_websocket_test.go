package config

import (
	"strings"
	"testing"
)

func TestServerWebSocket(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      string // error text; "" for a valid document
		check     func(*Document) bool
	}{
		{name: "defaults", src: "listeners: {proxy: ''}\n",
			check: func(d *Document) bool {
				w := d.Server.WebSocket
				return w.MaxMessageBytes == 1<<20 && w.MessagesPerSecond == 0 && w.Burst == 0
			}},
		{name: "all set", src: "listeners: {proxy: ''}\nserver: {websocket: {max_message_bytes: 4096, messages_per_second: 2.5, burst: 10}}\n",
			check: func(d *Document) bool {
				w := d.Server.WebSocket
				return w.MaxMessageBytes == 4096 && w.MessagesPerSecond == 2.5 && w.Burst == 10
			}},
		{name: "integer rate, no cap", src: "listeners: {proxy: ''}\nserver: {websocket: {max_message_bytes: 0, messages_per_second: 50}}\n",
			check: func(d *Document) bool {
				return d.Server.WebSocket.MaxMessageBytes == 0 && d.Server.WebSocket.MessagesPerSecond == 50
			}},
		{name: "negative size", src: "listeners: {proxy: ''}\nserver: {websocket: {max_message_bytes: -1}}\n",
			want: "t.yaml:2:41: server.websocket.max_message_bytes: must not be negative (0: no cap)"},
		{name: "negative rate", src: "listeners: {proxy: ''}\nserver: {websocket: {messages_per_second: -2}}\n",
			want: "t.yaml:2:43: server.websocket.messages_per_second: must be a finite number, at least 0 (0: no rate limit)"},
		{name: "nan rate", src: "listeners: {proxy: ''}\nserver: {websocket: {messages_per_second: .nan}}\n",
			want: "server.websocket.messages_per_second: must be a finite number"},
		{name: "infinite rate", src: "listeners: {proxy: ''}\nserver: {websocket: {messages_per_second: .inf}}\n",
			want: "server.websocket.messages_per_second: must be a finite number"},
		{name: "negative burst", src: "listeners: {proxy: ''}\nserver: {websocket: {messages_per_second: 1, burst: -1}}\n",
			want: "server.websocket.burst: must not be negative"},
		{name: "burst without rate", src: "listeners: {proxy: ''}\nserver: {websocket: {burst: 5}}\n",
			want: "t.yaml:2:29: server.websocket.burst: a burst needs messages_per_second"},
		{name: "unknown key", src: "listeners: {proxy: ''}\nserver: {websocket: {max_messages: 5}}\n",
			want: `t.yaml:2:22: server.websocket.max_messages: unknown key "max_messages"; expected one of: burst, max_message_bytes, messages_per_second`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Parse("t.yaml", []byte(tc.src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want == "" && !tc.check(doc):
				t.Fatalf("decoded %+v", doc.Server.WebSocket)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
