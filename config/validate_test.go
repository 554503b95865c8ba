package config

import (
	"strings"
	"testing"
)

const testHash = `"sha512:ee26b0dd4af7e749aa1a8ee3c10ae9923f618980772e473f8819a5d4940e0db27ac185f8a0e1d5f84f88bc887fd67b143732c304cc5fa9ad8e6f57f50028a8ff"`

// TestParseErrors covers the smaller rules; each case is a whole document (line 1 is
// "listeners: {proxy: ”}" so no upstream is needed) and its exact error lines.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"empty", "", []string{"t.yaml: the document is empty"}},
		{"comment only", "# nothing\n", []string{"t.yaml: the document is empty"}},
		{"two documents", "log: {level: info}\n---\nlog: {level: info}\n", []string{"t.yaml:2: only one YAML document per file"}},
		{"root not a mapping", "- a\n", []string{"t.yaml:1:1: expected a mapping, got a list"}},
		{"duplicate key", "listeners: {proxy: ''}\nlog: {level: info}\nlog: {level: warn}\n", []string{`t.yaml:3:1: log: duplicate key "log" (first at line 2)`}},
		{"merge key", "listeners: {proxy: ''}\nx: &x {level: info}\nlog:\n  <<: *x\n", []string{
			`t.yaml:2:1: x: unknown key "x"; expected one of: default, identity, listeners, log, network, policies, providers, rls, routes, server, store, upstream`,
			`t.yaml:4:3: log: merge keys (<<) are not supported; repeat the keys`}},
		{"alias is followed", "listeners: {proxy: &a '', grpc: *a}\n", nil},
		{"alias bomb", aliasBomb(), []string{"document too complex: aliases expand beyond the node budget"}},
		{"non-scalar key", "listeners: {proxy: ''}\n? [a]\n: b\n", []string{`t.yaml:2:3: mapping keys must be plain strings, got a list`}},
		{"bool not yes", "listeners: {proxy: ''}\npolicies: {p: {anonymous: yes}}\n", []string{`t.yaml:2:27: policies.p.anonymous: expected true or false, got "yes"`}},
		{"int overflow", "listeners: {proxy: ''}\nserver: {max_header_count: 99999999999999999999}\n", []string{`t.yaml:2:28: server.max_header_count: expected an integer, got "99999999999999999999"`}},
		{"negative duration", "listeners: {proxy: ''}\nserver: {idle_timeout: -1s}\n", []string{`t.yaml:2:24: server.idle_timeout: a duration must not be negative, got -1s`}},
		{"zero limit", "listeners: {proxy: ''}\nserver: {max_body_bytes: 0}\n", []string{`t.yaml:2:26: server.max_body_bytes: must be positive`}},
		{"list expected", "listeners: {proxy: ''}\nnetwork: {trusted_proxies: 10.0.0.0/8}\n", []string{`t.yaml:2:28: network.trusted_proxies: expected a list, got "10.0.0.0/8"`}},
		{"cidr zone", "listeners: {proxy: ''}\nnetwork: {trusted_proxies: ['fe80::1%eth0']}\n", []string{`t.yaml:2:29: network.trusted_proxies[0]: invalid CIDR "fe80::1%eth0": expected an address or address/bits such as 10.0.0.0/8`}},
		{"upstream creds", "upstream: {url: 'http://u:p@127.0.0.1:8080'}\n", []string{`t.yaml:1:17: upstream.url: credentials in the upstream URL are not allowed`}},
		{"upstream scheme", "upstream: {url: 'ftp://127.0.0.1'}\n", []string{`t.yaml:1:17: upstream.url: invalid upstream URL "ftp://127.0.0.1": expected http://host:port or https://host:port`}},
		{"same listener twice", "listeners: {proxy: '', grpc: '127.0.0.1:9002'}\n", []string{`t.yaml:1:30: listeners.grpc: address 127.0.0.1:9002 is also used by listeners.admin`}},
		{"default both", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true}}\ndefault: {status: 404, policy: p}\n", []string{`t.yaml:3:10: default: set either status or policy, not both`}},
		{"default status", "listeners: {proxy: ''}\ndefault: {status: 200}\n", []string{`t.yaml:2:19: default.status: status must be a 4xx or 5xx code, got 200`}},
		{"policy name", "listeners: {proxy: ''}\npolicies: {'a b': {anonymous: true}}\n", []string{`t.yaml:2:12: policies["a b"]: invalid policy name "a b": use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit`}},
		{"on_error", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, inspect: [{ip: {deny: [10.0.0.0/8]}, on_error: ignore}]}}\n", []string{`t.yaml:2:80: policies.p.inspect[0].on_error: invalid on_error "ignore": expected deny or allow`}},
		{"stage not a mapping", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, inspect: [ip]}}\n", []string{`t.yaml:2:43: policies.p.inspect[0]: expected a stage, a mapping with one stage kind (apikey, bruteforce, hmac, introspection, ip, jwt, ratelimit, scopes), got "ip"`}},
		{"stage without kind", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, inspect: [{shadow: true}]}}\n", []string{`t.yaml:2:43: policies.p.inspect[0]: stage has no kind; expected one of: apikey, bruteforce, hmac, introspection, ip, jwt, ratelimit, scopes`}},
		{"bruteforce ipv6 prefix", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, inspect: [{bruteforce: {ipv6_prefix: 32}}]}}\n", []string{`t.yaml:2:70: policies.p.inspect[0].bruteforce.ipv6_prefix: ipv6_prefix must be 48 to 128 (bits of an IPv6 client's network), got 32`}},
		{"empty ip stage", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, inspect: [{ip: {}}]}}\n", []string{`t.yaml:2:44: policies.p.inspect[0].ip: an ip stage needs allow or deny`}},
		{"empty scopes stage", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, authorize: [{scopes: {any: []}}]}}\n", []string{`t.yaml:2:46: policies.p.authorize[0].scopes: a scopes stage needs any or all`}},
		{"scope with space", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true, authorize: [{scopes: {all: ['a b']}}]}}\n", []string{`t.yaml:2:61: policies.p.authorize[0].scopes.all[0]: invalid scope "a b": scopes are printable ASCII without spaces or quotes`}},
		{"apikey without keys", "listeners: {proxy: ''}\npolicies: {p: {authenticate: [{apikey: {}}]}}\n", []string{`t.yaml:2:32: policies.p.authenticate[0].apikey: no API keys are configured (providers.apikeys is empty)`}},
		{"apikey source two", keys + "policies: {p: {authenticate: [{apikey: {sources: [{header: X-Key, query: k}]}}]}}\n", []string{`t.yaml:3:51: policies.p.authenticate[0].apikey.sources[0]: a source is exactly one of header, query or bearer`}},
		{"apikey bearer false", keys + "policies: {p: {authenticate: [{apikey: {sources: [{bearer: false}]}}]}}\n", []string{`t.yaml:3:60: policies.p.authenticate[0].apikey.sources[0].bearer: bearer: false is not a source; remove the entry`}},
		{"apikey bad header", keys + "policies: {p: {authenticate: [{apikey: {sources: [{header: 'X Key'}]}}]}}\n", []string{`t.yaml:3:60: policies.p.authenticate[0].apikey.sources[0].header: invalid header name "X Key"`}},
		{"key id", "listeners: {proxy: ''}\nproviders: {apikeys: [{id: AB, subject: s, hash: " + testHash + "}]}\n", []string{`t.yaml:2:28: providers.apikeys[0].id: invalid key id "AB": 4 to 32 lowercase letters and digits`}},
		{"key hash algorithm", "listeners: {proxy: ''}\nproviders: {apikeys: [{id: abcd, subject: s, hash: 'md5:00'}]}\n", []string{`t.yaml:2:52: providers.apikeys[0].hash: unsupported hash algorithm "md5": only sha512 is accepted`}},
		{"key hash length", "listeners: {proxy: ''}\nproviders: {apikeys: [{id: abcd, subject: s, hash: 'sha512:00'}]}\n", []string{`t.yaml:2:52: providers.apikeys[0].hash: a sha512 hash is 128 hex digits`}},
		{"key required fields", "listeners: {proxy: ''}\nproviders: {apikeys: [{id: abcd}]}\n", []string{
			`t.yaml:2:23: providers.apikeys[0].hash: hash is required`,
			`t.yaml:2:23: providers.apikeys[0].subject: subject is required`}},
		{"key expires", "listeners: {proxy: ''}\nproviders: {apikeys: [{id: abcd, subject: s, hash: " + testHash + ", expires: 2027-01-01}]}\n", []string{`t.yaml:2:200: providers.apikeys[0].expires: expected an RFC 3339 time such as 2027-01-01T00:00:00Z, got "2027-01-01"`}},
		{"route without name", "listeners: {proxy: ''}\npolicies: {p: {anonymous: true}}\nroutes: [{policy: p}]\n", []string{`t.yaml:3:10: routes[0].name: route name is required`}},
		{"two path matchers", route("path: {exact: /a, prefix: /a}"), []string{`t.yaml:3:45: routes[0].match.path: set at most one of exact, prefix and regex`}},
		{"relative prefix", route("path: {prefix: api/}"), []string{`t.yaml:3:54: routes[0].match.path.prefix: a path prefix must start with '/'`}},
		{"empty regex", route("path: {regex: ''}"), []string{`t.yaml:3:53: routes[0].match.path.regex: regex is empty`}},
		{"host star", route("hosts: ['*']"), []string{`t.yaml:3:47: routes[0].match.hosts[0]: invalid host "*": leave hosts out to match any host`}},
		{"host port", route("hosts: ['a.example:99999']"), []string{`t.yaml:3:47: routes[0].match.hosts[0]: invalid host "a.example:99999": bad port`}},
		{"host chars", route("hosts: ['a/b']"), []string{`t.yaml:3:47: routes[0].match.hosts[0]: invalid host "a/b": host names are letters, digits, '-' and '.', with an optional leading '*.' and ':port'`}},
		{"header no condition", route("headers: [{name: x-a}]"), []string{`t.yaml:3:49: routes[0].match.headers[0]: a header match needs exactly one of exact, regex and present`}},
		{"header two conditions", route("headers: [{name: x-a, exact: '', present: true}]"), []string{`t.yaml:3:49: routes[0].match.headers[0]: a header match needs exactly one of exact, regex and present`}},
		{"header present false", route("headers: [{name: x-a, present: false}]"), []string{`t.yaml:3:70: routes[0].match.headers[0].present: present: false matches nothing; use present: true with invert: true`}},
		{"header bad regex", route("headers: [{name: x-a, regex: '('}]"), []string{"t.yaml:3:68: routes[0].match.headers[0].regex: invalid regex: error parsing regexp: missing closing ): `(`"}},
		{"long key", "listeners: {proxy: ''}\npolicies: {" + strings.Repeat("p", 300) + ": {anonymous: true}}\n", []string{`t.yaml:2:12: policies: key longer than 256 bytes`}},
		// decode errors silence validation of what they left at defaults
		{"unknown key hides required", "listeners: {proxy: ''}\nproviders: {apikeys: [{idd: abcd}]}\n", []string{`t.yaml:2:24: providers.apikeys[0].idd: unknown key "idd"; expected one of: allowed_ips, disabled, expires, hash, id, scopes, subject`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse("t.yaml", []byte(tt.src))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q (doc %+v)", tt.want, doc)
			}
			got := strings.Split(err.Error(), "\n")
			if len(tt.want) == 1 && !strings.HasPrefix(tt.want[0], "t.yaml") { // budget case: position varies
				if len(got) != 1 || !strings.Contains(got[0], tt.want[0]) {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				return
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

const keys = "listeners: {proxy: ''}\nproviders: {apikeys: [{id: abcd, subject: s, hash: " + testHash + "}]}\n"

// route returns a document whose line 3 is a route with the given match body.
func route(match string) string {
	return "listeners: {proxy: ''}\npolicies: {p: {anonymous: true}}\nroutes: [{name: r, policy: p, match: {" + match + "}}]\n"
}

// aliasBomb is a "billion laughs" document the schema follows: one anchored key with
// 2000 allowed_ips, referenced 2000 times (4 million CIDRs from a 60 KB file).
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("listeners: {proxy: ''}\nproviders:\n  apikeys:\n    - &k {id: abcd, allowed_ips: [")
	for i := 0; i < 2000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("10.0.0.0/8")
	}
	b.WriteString("]}\n")
	for i := 0; i < 2000; i++ {
		b.WriteString("    - *k\n")
	}
	return b.String()
}

func TestAuthenticateRefusesOnErrorAllow(t *testing.T) {
	doc := "listeners: {proxy: ''}\nproviders: {apikeys: [{id: abcd, subject: s, hash: " + testHash + "}]}\n" +
		"policies: {p: {authenticate: [{apikey: {}, on_error: allow}]}}\n"
	_, err := Parse("t.yaml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), "on_error: allow is not allowed in authenticate") {
		t.Fatalf("error: %v", err)
	}
}
