package telemetry

import (
	"encoding/json"
	"testing"
)

func FuzzAppendErrorBody(f *testing.F) {
	f.Add("credentials required", "auth.missing", "rid-1")
	f.Add("a\"b\\c\x00<script>&", "x\xff", "\u2028")
	f.Fuzz(func(t *testing.T, msg, reason, id string) {
		var got struct {
			Error     string `json:"error"`
			Reason    string `json:"reason"`
			RequestID string `json:"request_id"`
		}
		b := AppendErrorBody(nil, msg, reason, id)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		want, _ := json.Marshal(struct{ A, B, C string }{msg, reason, id})
		var w struct{ A, B, C string }
		_ = json.Unmarshal(want, &w)
		if got.Error != w.A || got.Reason != w.B || got.RequestID != w.C {
			t.Fatalf("round trip: got %+v want %+v", got, w)
		}
	})
}
