package proxy

import (
	"net/http"
	"strconv"

	"github.com/portcullis/portcullis/pkg/telemetry"
)

// writeJSONError writes the error body every Portcullis front-end uses:
// {"error": message, "reason": code, "request_id": id}.
func writeJSONError(w http.ResponseWriter, status int, message, reason, id string) {
	b := telemetry.AppendErrorBody(make([]byte, 0, telemetry.ErrorBodySize(message, reason, id)+1), message, reason, id)
	b = append(b, '\n')
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	if id != "" {
		h["X-Request-Id"] = []string{id}
	}
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client may be gone; nothing left to do
}
