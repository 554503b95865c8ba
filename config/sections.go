package config

import (
	"math"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Listeners are the addresses Portcullis listens on. An empty address disables that
// listener.
type Listeners struct {
	Proxy       string `yaml:"proxy"`        // reverse proxy; default 127.0.0.1:8000
	GRPC        string `yaml:"grpc"`         // Envoy ext_authz and RLS; default 127.0.0.1:9001
	Admin       string `yaml:"admin"`        // health, metrics, JWKS; default 127.0.0.1:9002
	ForwardAuth string `yaml:"forward_auth"` // forward-auth endpoint; default off
}

// Validate checks each address and that no two listeners share one.
func (l *Listeners) Validate(v *Validator, path string) {
	seen := map[string]string{}
	for _, a := range []struct{ key, addr string }{
		{"proxy", l.Proxy}, {"grpc", l.GRPC}, {"admin", l.Admin}, {"forward_auth", l.ForwardAuth},
	} {
		if a.addr == "" {
			continue
		}
		p := joinPath(path, a.key)
		if msg := checkAddress(a.addr); msg != "" {
			v.Errorf(p, "%s", msg)
			continue
		}
		if other, dup := seen[a.addr]; dup && !hasPortZero(a.addr) {
			at, by := p, other
			if !v.Has(p) { // report it where the user wrote it
				at, by = joinPath(path, other), a.key
			}
			v.Errorf(at, "address %s is also used by listeners.%s", a.addr, by)
		}
		seen[a.addr] = a.key
	}
}

func hasPortZero(addr string) bool { return len(addr) >= 2 && addr[len(addr)-2:] == ":0" }

// Upstream is the service the reverse proxy forwards allowed requests to.
type Upstream struct {
	// URL is the upstream base URL (http or https). Required when listeners.proxy is set.
	URL                 string           `yaml:"url"`
	Timeouts            UpstreamTimeouts `yaml:"timeouts"`
	MaxIdleConnsPerHost int              `yaml:"max_idle_conns_per_host"` // default 256
}

// UpstreamTimeouts bound the proxy's connections to the upstream.
type UpstreamTimeouts struct {
	Dial           time.Duration `yaml:"dial"`            // default 5s
	ResponseHeader time.Duration `yaml:"response_header"` // default 30s
	IdleConn       time.Duration `yaml:"idle_conn"`       // default 90s
}

// Validate checks the URL and limits.
func (u *Upstream) Validate(v *Validator, path string) {
	if u.URL != "" {
		p := joinPath(path, "url")
		pu, err := url.Parse(u.URL)
		switch {
		case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			v.Errorf(p, "invalid upstream URL %q: expected http://host:port or https://host:port", redactURL(u.URL))
		case pu.User != nil:
			v.Errorf(p, "credentials in the upstream URL are not allowed")
		case pu.RawQuery != "" || pu.Fragment != "" || pu.ForceQuery:
			v.Errorf(p, "the upstream URL must not have a query or fragment")
		}
	}
	if u.MaxIdleConnsPerHost <= 0 {
		v.Errorf(joinPath(path, "max_idle_conns_per_host"), "must be positive")
	}
}

// Validate checks that every timeout is positive.
func (t *UpstreamTimeouts) Validate(v *Validator, path string) {
	positive(v, path, "dial", t.Dial)
	positive(v, path, "response_header", t.ResponseHeader)
	positive(v, path, "idle_conn", t.IdleConn)
}

// redactURL hides the userinfo of a URL quoted in an error (a password must never reach
// a log line), also when the URL does not parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return raw
}

func positive[T ~int | ~int64](v *Validator, path, key string, x T) {
	if x <= 0 {
		v.Errorf(joinPath(path, key), "must be positive")
	}
}

// Network describes the network around the sidecar.
type Network struct {
	// TrustedProxies are the peers whose X-Forwarded-For is believed when resolving
	// the client address. Default: none (the TCP peer is the client).
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
}

// Identity configures the identity headers sent upstream.
type Identity struct {
	// HeaderPrefix is the lowercase prefix of identity headers; default "x-portcullis-".
	// Inbound headers with this prefix are always removed.
	HeaderPrefix string `yaml:"header_prefix"`
}

// Validate checks the prefix is a lowercase header-name prefix ending in '-'.
func (id *Identity) Validate(v *Validator, path string) {
	p := id.HeaderPrefix
	// '_' is refused: CGI-style upstreams read '_' as '-', and stripping matches inbound
	// names that way, so a prefix must be written with '-' only.
	ok := len(p) >= 2 && p[len(p)-1] == '-' && isToken(p) && !strings.Contains(p, "_")
	for i := 0; ok && i < len(p); i++ {
		ok = p[i] < 'A' || p[i] > 'Z'
	}
	if !ok {
		v.Errorf(joinPath(path, "header_prefix"), "invalid header_prefix %q: lowercase header name characters without '_', ending in '-', such as x-portcullis-", p)
	}
}

// Server holds the front-end limits (proxy, forward-auth and admin listeners).
type Server struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // default 120s
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`    // default 61440
	MaxHeaderCount    int           `yaml:"max_header_count"`    // default 100
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`      // default 10485760
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`    // default 15s
	// StreamIdleTimeout bounds each read and write of an exchange on the proxy that
	// waits on the client or the upstream (a stalled request body, a client that
	// stops reading, an upstream that stops sending its body). Default 5m, Envoy's
	// stream_idle_timeout.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`

	// WebSocket limits the messages of upgraded connections on the proxy.
	WebSocket ServerWebSocket `yaml:"websocket"`
}

// ServerWebSocket limits the client messages of each upgraded (WebSocket) connection
// on the proxy. With any limit set, client frames are checked (RFC 6455) and a
// violation closes the connection with 1008 (limits) or 1002 (protocol).
type ServerWebSocket struct {
	MaxMessageBytes   int64   `yaml:"max_message_bytes"`   // default 1048576; 0: no cap
	MessagesPerSecond float64 `yaml:"messages_per_second"` // default 0: no rate limit
	Burst             int     `yaml:"burst"`               // default 0: messages_per_second rounded up
}

// Validate checks that the limits are not negative and that a burst comes with a rate.
func (w *ServerWebSocket) Validate(v *Validator, path string) {
	if w.MaxMessageBytes < 0 {
		v.Errorf(joinPath(path, "max_message_bytes"), "must not be negative (0: no cap)")
	}
	if !(w.MessagesPerSecond >= 0) || math.IsInf(w.MessagesPerSecond, 0) { // NaN fails >= 0
		v.Errorf(joinPath(path, "messages_per_second"), "must be a finite number, at least 0 (0: no rate limit)")
	}
	switch {
	case w.Burst < 0:
		v.Errorf(joinPath(path, "burst"), "must not be negative")
	case w.Burst > 0 && w.MessagesPerSecond == 0:
		v.Errorf(joinPath(path, "burst"), "a burst needs messages_per_second")
	}
}

// Validate checks that every limit is positive.
func (s *Server) Validate(v *Validator, path string) {
	positive(v, path, "read_header_timeout", s.ReadHeaderTimeout)
	positive(v, path, "idle_timeout", s.IdleTimeout)
	positive(v, path, "max_header_bytes", s.MaxHeaderBytes)
	positive(v, path, "max_header_count", s.MaxHeaderCount)
	positive(v, path, "max_body_bytes", s.MaxBodyBytes)
	positive(v, path, "shutdown_timeout", s.ShutdownTimeout)
	positive(v, path, "stream_idle_timeout", s.StreamIdleTimeout)
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"` // debug, info (default), warn or error
	// Decisions says which requests get a decision line: all (default), denies or none.
	// Denies are always in the audit log.
	Decisions string `yaml:"decisions"`
}

// Validate checks the level and the decision lines.
func (l *Log) Validate(v *Validator, path string) {
	if !oneOf(l.Level, "debug", "info", "warn", "error") {
		v.Errorf(joinPath(path, "level"), "invalid level %q: expected debug, info, warn or error", l.Level)
	}
	if !oneOf(l.Decisions, "all", "denies", "none") {
		v.Errorf(joinPath(path, "decisions"), "invalid decisions %q: expected all, denies or none", l.Decisions)
	}
}

// DefaultRoute says what happens to a request no route matches: a deny with Status,
// or the policy named Policy. Exactly one is set; default {status: 404}.
type DefaultRoute struct {
	Status int    `yaml:"status"`
	Policy string `yaml:"policy"`
}

// Validate checks that exactly one of status and policy is set and that they are valid.
func (dr *DefaultRoute) Validate(v *Validator, path string) {
	switch {
	case dr.Policy != "" && dr.Status != 0:
		v.Errorf(path, "set either status or policy, not both")
	case dr.Policy != "":
		if _, ok := v.Document().Policies[dr.Policy]; !ok {
			v.Errorf(joinPath(path, "policy"), "unknown policy %q", dr.Policy)
		}
	case dr.Status < 400 || dr.Status > 599:
		v.Errorf(joinPath(path, "status"), "status must be a 4xx or 5xx code, got %d", dr.Status)
	}
}
