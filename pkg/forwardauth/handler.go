// Package forwardauth is Portcullis's HTTP decision endpoint for reverse proxies that
// delegate authorization with a sub-request: nginx auth_request, Traefik ForwardAuth
// and Caddy forward_auth. The proxy sends the original request's headers (and its
// method, URI, host and scheme in X-Forwarded-* or X-Original-* headers); the handler
// answers 200 with the identity headers to copy upstream, or the deny.
//
// Proxy contract (docs/deployment.md repeats it with configuration snippets):
//
//   - Only the proxy may call the endpoint, and its address must be in TrustedProxies;
//     otherwise the X-Forwarded-* / X-Original-* headers are ignored (see
//     requestFromForward).
//   - On 200 the response carries the identity headers (X-Portcullis-Subject, -Auth,
//     -Key-Id, -Scopes, ...) and X-Request-Id. The proxy copies them upstream
//     (Traefik authResponseHeaders, Caddy copy_headers, nginx auth_request_set +
//     proxy_set_header). The proxy must itself remove inbound identity headers from
//     the request it forwards (Traefik and Caddy overwrite only the headers the auth
//     response carries; a header the decision does not set, e.g. a spoofed
//     X-Portcullis-Claim-Admin, would pass). Consumed credentials (Authorization,
//     query keys) cannot be removed through forward-auth either.
//   - On deny the response has the deny status, the client headers (WWW-Authenticate,
//     Retry-After, RateLimit-*), Content-Type application/json, X-Request-Id and the
//     body {"error","reason","request_id"}. Traefik and Caddy return it to the client
//     as is. nginx auth_request passes only 401 and 403 through and turns every other
//     status into 500: map it with `auth_request_set $auth_status $upstream_status;`
//     and an `error_page 500 = @denied` location, or accept 500 for 404/413/429/503.
package forwardauth

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

const frontend = "forwardauth"

// Options configure a Handler.
type Options struct {
	// Engine decides every request. Required.
	Engine *engine.Engine
	// TrustedProxies are the reverse proxies allowed to describe the original request.
	TrustedProxies []netip.Prefix
	// Log writes one decision line per request (optional).
	Log *telemetry.DecisionLog
	// Audit records denies (optional).
	Audit *telemetry.Audit
	// Now is the clock stamping Request.Received (default time.Now).
	Now func() time.Time
}

// Handler is the forward-auth http.Handler.
type Handler struct {
	engine  *engine.Engine
	trusted []netip.Prefix
	log     *telemetry.DecisionLog
	audit   *telemetry.Audit
	now     func() time.Time
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler for o.
func New(o Options) *Handler {
	h := &Handler{engine: o.Engine, trusted: o.TrustedProxies, log: o.Log, audit: o.Audit, now: o.Now}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// ServeHTTP decides the original request the proxy describes and answers 200 or the deny.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	er := &engine.Request{Received: h.now()}
	var d engine.Decision
	fromProxy, err := requestFromForward(er, r, h.trusted)
	switch {
	case errors.Is(err, errConflict):
		d = badRequest("forward.conflict", err.Error())
	case err != nil:
		d = badRequest("path.invalid", err.Error())
	case readBody(er, r, h.engine.Prepare(er), fromProxy) != nil:
		d = badRequest("body.unreadable", "request body could not be read")
	default:
		d = h.engine.Decide(r.Context(), er)
	}
	if h.log != nil {
		h.log.Log(frontend, er, &d)
	}
	if !d.Allow && h.audit != nil {
		h.audit.Deny(frontend, er, &d)
	}
	writeDecision(w, er, &d)
}

func badRequest(reason, msg string) engine.Decision {
	return engine.Decision{Status: http.StatusBadRequest, Reason: reason, Message: msg, DecidedBy: frontend}
}

// writeDecision writes d: 200 with identity headers, or the deny with its JSON body.
func writeDecision(w http.ResponseWriter, er *engine.Request, d *engine.Decision) {
	out := w.Header()
	for k, vs := range d.Response {
		out[k] = append(out[k], vs...)
	}
	out.Set(hdrRequestID, er.ID)
	if d.Allow {
		seen := make(map[string]bool, len(d.Upstream.Set))
		for _, hv := range d.Upstream.Set {
			k := http.CanonicalHeaderKey(hv.Name)
			if seen[k] {
				out.Add(k, hv.Value)
			} else {
				out.Set(k, hv.Value)
				seen[k] = true
			}
		}
		out.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	status := d.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	body := errorBody(d.Message, d.Reason, er.ID)
	out.Set("Content-Type", "application/json")
	out.Set("Content-Length", strconv.Itoa(len(body)))
	out.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body) // a failed write means the proxy went away; nothing to do
}

// errorBody is the JSON deny body, the same as the other front-ends'.
func errorBody(msg, reason, id string) []byte {
	return telemetry.AppendErrorBody(make([]byte, 0, telemetry.ErrorBodySize(msg, reason, id)), msg, reason, id)
}
