package config

import (
	"strings"
	"testing"
	"time"
)

const jwtFull = `listeners: {proxy: ''}
providers:
  jwt:
    - name: corp
      issuer: https://id.example.com/
      audiences: [api]
      algorithms: [ES256, RS256]
      clock_skew: 0s
      max_token_size: 4096
      allow_missing_exp: true
      claims:
        - {path: tenant.id}
        - {path: tier, equals: gold}
        - {path: env, one_of: [prod, staging]}
        - {path: roles, contains: admin}
      keys: {url: "https://id.example.com/jwks.json"}
      remote: {min_refresh: 2m, max_refresh: 2h, unknown_kid_interval: 10s, timeout: 2s,
               max_response_bytes: 65536, wait_first_fetch: true, first_fetch_timeout: 3s,
               ca_file: ca.pem}
      sources: [{bearer: true}, {header: X-Token, prefix: "Token "}, {cookie: session}, {query: access_token}]
      subject_claim: uid
      scope_claims: [scp, roles]
      claim_headers: {tenant.id: claim-tenant, email: /x-email}
      payload_header: jwt-payload
      deny_jtis: [j1]
      deny_subjects: [mallory]
      cache_size: 0
      forward: true
    - name: partner
      keys: {jwks: '{"keys":[]}'}
  introspection:
    - name: idp
      endpoint: https://idp.example.com/introspect
      client_id: portcullis
      client_secret: env:IDP_SECRET
      issuer: https://idp.example.com/
      audiences: [api]
      required_scopes: [read]
      cache_ttl: 1m
      negative_ttl: 0s
      timeout: 1s
      ca_file: /etc/ca.pem
policies:
  api:
    authenticate: [{jwt: corp}, {jwt: partner}, {introspection: idp}]
`

func TestJWTProviderParse(t *testing.T) {
	doc, err := Parse("t.yaml", []byte(jwtFull))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := doc.Providers.JWT.ByName("corp")
	if !ok {
		t.Fatal("corp not found")
	}
	if p.ClockSkew != 0 || p.MaxTokenSize != 4096 || p.CacheSize != 0 || !p.Forward || p.SubjectClaim != "uid" {
		t.Errorf("scalars: %+v", p)
	}
	if p.Remote.MinRefresh != 2*time.Minute || !p.Remote.WaitFirstFetch || p.Remote.CAFile != "ca.pem" {
		t.Errorf("remote: %+v", p.Remote)
	}
	if len(p.Sources) != 4 || p.Sources[1].Prefix != "Token " || p.Sources[3].Query != "access_token" {
		t.Errorf("sources: %+v", p.Sources)
	}
	if p.ClaimHeaders["tenant.id"] != "claim-tenant" || len(p.Claims) != 4 || p.Claims[2].OneOf[1] != "staging" {
		t.Errorf("claims: %+v %+v", p.ClaimHeaders, p.Claims)
	}
	q, _ := doc.Providers.JWT.ByName("partner")
	if q.ClockSkew != DefaultJWTClockSkew || q.CacheSize != DefaultJWTCacheSize || q.SubjectClaim != "sub" ||
		q.Remote.Timeout != 5*time.Second || q.Remote.FirstFetchTimeout != 15*time.Second {
		t.Errorf("defaults: %+v", q)
	}
	ip, _ := doc.Providers.Introspection.ByName("idp")
	if ip.ClientSecret.Ref() != "env:IDP_SECRET" || ip.NegativeTTL != 0 || ip.CacheTTL != time.Minute {
		t.Errorf("introspection: %+v", ip)
	}
	if st := doc.Policies["api"].Authenticate; st[0].Spec.(*JWTStage).Provider != "corp" ||
		st[2].Spec.(*IntrospectionStage).Provider != "idp" {
		t.Errorf("stages: %+v", st)
	}
}

func TestClaimHeader(t *testing.T) {
	for ref, want := range map[string]string{
		"claim-tenant": "x-p-claim-tenant", "Tenant": "x-p-tenant", "/X-Email": "x-email",
	} {
		if got := ClaimHeader(ref, "x-p-"); got != want {
			t.Errorf("ClaimHeader(%q) = %q, want %q", ref, got, want)
		}
	}
}

// TestJWTErrors: each case is a provider list entry (under providers.jwt[0]) or a
// document tail, and its exact error lines.
func TestJWTErrors(t *testing.T) {
	const head = "listeners: {proxy: ''}\nproviders:\n  jwt:\n    - "
	const tail = "\npolicies: {p: {authenticate: [{jwt: a}]}}\n"
	tests := []struct{ name, provider, want string }{
		{"unknown alg", `{name: a, algorithms: [HS1], keys: {jwks: x}}`,
			`t.yaml:4:30: providers.jwt[0].algorithms[0]: unknown algorithm "HS1"; expected one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512`},
		{"no key source", `{name: a}`,
			`t.yaml:4:7: providers.jwt[0].keys: keys need exactly one of jwks, file, url and discovery (0 given)`},
		{"discovery without issuer", `{name: a, keys: {discovery: true}}`,
			`t.yaml:4:7: providers.jwt[0].issuer: discovery needs the issuer's URL`},
		{"discovery http issuer", `{name: a, issuer: "http://id", keys: {discovery: true}}`,
			`t.yaml:4:25: providers.jwt[0].issuer: plain http URL "http://id": use https, or set remote.allow_http for development`},
		{"http allowed", `{name: a, keys: {url: "http://id/k"}, remote: {allow_http: true}}`, ""},
		{"bad url", `{name: a, keys: {url: "id/k"}}`,
			`t.yaml:4:29: providers.jwt[0].keys.url: invalid URL "id/k": expected https://host/...`},
		{"two sources in one", `{name: a, keys: {jwks: x}, sources: [{bearer: true, cookie: c}]}`,
			`t.yaml:4:44: providers.jwt[0].sources[0]: a source is exactly one of bearer, header, cookie and query`},
		{"prefix without header", `{name: a, keys: {jwks: x}, sources: [{cookie: c, prefix: "T "}]}`,
			`t.yaml:4:64: providers.jwt[0].sources[0].prefix: prefix applies to a header source only`},
		{"bad claim header", `{name: a, keys: {jwks: x}, claim_headers: {tenant: "x y"}}`,
			`t.yaml:4:50: providers.jwt[0].claim_headers.tenant: invalid header name "x y": a header name relative to identity.header_prefix, or /name for an absolute one`},
		{"claim rule without path", `{name: a, keys: {jwks: x}, claims: [{equals: b}]}`,
			`t.yaml:4:43: providers.jwt[0].claims[0].path: path is required`},
		{"refresh order", `{name: a, keys: {url: "https://i/k"}, remote: {min_refresh: 2h}}`,
			`t.yaml:4:67: providers.jwt[0].remote.min_refresh: min_refresh 2h0m0s exceeds max_refresh 1h0m0s`},
		{"zero timeout", `{name: a, keys: {url: "https://i/k"}, remote: {timeout: 0s}}`,
			`t.yaml:4:63: providers.jwt[0].remote.timeout: must be positive`},
		{"stage not a name", "{name: a, keys: {jwks: x}}\npolicies: {q: {authenticate: [{jwt: {provider: a}}]}}",
			`t.yaml:5:37: policies.q.authenticate[0].jwt: expected the name of a providers.jwt entry, such as {jwt: corp}, got a mapping`},
		{"duplicate names", "{name: a, keys: {jwks: x}}\n    - {name: a, keys: {jwks: x}}",
			`t.yaml:5:14: providers.jwt[1].name: duplicate provider name "a" (first is providers.jwt[0])`},
		{"clash with introspection", "{name: a, keys: {jwks: x}}\n  introspection: [{name: a, endpoint: 'https://i/x'}]",
			`t.yaml:4:14: providers.jwt[0].name: duplicate provider name "a" (first is providers.introspection[0])`},
		{"introspection http", "{name: a, keys: {jwks: x}}\n  introspection: [{name: b, endpoint: 'http://i/x', client_secret: env:S}]",
			"t.yaml:5:19: providers.introspection[0].client_id: a client_secret needs a client_id\n" +
				"t.yaml:5:39: providers.introspection[0].endpoint: plain http URL \"http://i/x\": use https, or set allow_http for development"},
		{"unknown introspection provider", "{name: a, keys: {jwks: x}}\npolicies: {q: {authenticate: [{introspection: a}]}}",
			`t.yaml:5:32: policies.q.authenticate[0].introspection: unknown introspection provider "a" (none is configured)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := head + tt.provider + tail
			if strings.Contains(tt.provider, "\npolicies") {
				src = head + tt.provider + "\n"
			}
			_, err := Parse("t.yaml", []byte(src))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), tt.want)
			}
		})
	}
}
