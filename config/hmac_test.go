package config

import (
	"strings"
	"testing"
)

// hmacDoc returns a document whose providers.hmac list is given on line 3 (flow style)
// and whose line 4 is a policy authenticating with provider p.
func hmacDoc(providers, stage string) string {
	return "listeners: {proxy: ''}\nproviders:\n  hmac: [" + providers + "]\npolicies: {p: {authenticate: [" + stage + "]}}\n"
}

const (
	hmacClient = "clients: [{subject: s, keys: [{id: k1, secret: env:K1}]}]"
	hmacStage  = "{hmac: {provider: a}}"
)

func TestHMACValid(t *testing.T) {
	src := `listeners: {proxy: ''}
providers:
  hmac:
    - name: partners
      clients:
        - subject: billing
          scopes: [invoices:write]
          keys:
            - {id: billing-2025, secret: env:BILLING_2025}
            - {id: billing-2025, secret: file:billing.key}
            - {id: billing-ed, algorithm: ed25519, public_key: file:keys/billing.pem}
      policy:
        required_components: ["@method", "@target-uri", "@authority", content-digest]
        digest_required: always
        digest_algorithms: [sha-512]
        algorithms: [hmac-sha256, ed25519]
        max_age: 2m
        clock_skew: 5s
        require_nonce: true
        require_expires: true
        tag: orders
        label: sig1
      body_limit: 65536
    - {name: gh, scheme: github, replay_window: 1h, ` + hmacClient + `}
    - {name: slack, scheme: slack, tolerance: 1m, timestamp_header: X-Ts, header: X-Sig, replay: false, ` + hmacClient + `}
policies:
  p: {authenticate: [{hmac: {provider: partners}}, {hmac: {provider: gh}}]}
`
	doc, err := Parse("/etc/portcullis/t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ps := doc.Providers.HMAC
	p, i, ok := ps.ByName("partners")
	if !ok || i != 0 || p.Scheme != HMACSchemeRFC9421 || !p.Replay || p.BodyLimit != 65536 {
		t.Fatalf("partners: %+v", p)
	}
	if k := p.Clients[0].Keys[0]; k.Algorithm != HMACAlgHMACSHA256 || k.Secret.Ref() != "env:BILLING_2025" {
		t.Errorf("key defaults: %+v", k)
	}
	if got := p.Clients[0].Keys[2].PublicKey.Ref(); got != "file:/etc/portcullis/keys/billing.pem" {
		t.Errorf("public key reference is relative to the document: %s", got)
	}
	if p.Policy.DigestRequired != DigestAlways || len(p.Policy.RequiredComponents) != 4 || p.Policy.MaxAge.Minutes() != 2 {
		t.Errorf("policy: %+v", p.Policy)
	}
	if gh := ps[1]; gh.Policy.DigestRequired != DigestIfBody || gh.BodyLimit != DefaultHMACBodyLimit || gh.ReplayWindow.Hours() != 1 {
		t.Errorf("defaults of a webhook provider: %+v", gh)
	}
	if ps[2].Replay {
		t.Error("replay: false ignored")
	}
	if st := doc.Policies["p"].Authenticate[1]; st.Spec.(*HMACStage).Provider != "gh" {
		t.Errorf("stage: %+v", st)
	}
}

func TestHMACErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"bare provider name", hmacDoc("{name: a, "+hmacClient+"}", "{hmac: a}"),
			[]string{`t.yaml:4:38: policies.p.authenticate[0].hmac: expected a mapping: write hmac: {provider: "a"}`}},
		{"provider required", hmacDoc("{name: a, "+hmacClient+"}", "{hmac: {}}"),
			[]string{`t.yaml:4:32: policies.p.authenticate[0].hmac.provider: provider is required: the name of an entry of providers.hmac`}},
		{"no providers", "listeners: {proxy: ''}\npolicies: {p: {authenticate: [{hmac: {provider: a}}]}}\n",
			[]string{`t.yaml:2:49: policies.p.authenticate[0].hmac.provider: unknown hmac provider "a": providers.hmac is empty`}},
		{"hmac in inspect", "listeners: {proxy: ''}\nproviders: {hmac: [{name: a, " + hmacClient + "}]}\npolicies: {p: {anonymous: true, inspect: [{hmac: {provider: a}}]}}\n",
			[]string{`t.yaml:3:44: policies.p.inspect[0].hmac: hmac stages are not allowed in inspect; they go in authenticate`}},
		{"duplicate name", hmacDoc("{name: a, "+hmacClient+"}, {name: a, "+hmacClient+"}", hmacStage),
			[]string{`t.yaml:3:87: providers.hmac[1].name: duplicate hmac provider "a" (first is providers.hmac[0])`}},
		{"bad name", hmacDoc("{name: 'a b', "+hmacClient+"}", "{hmac: {provider: 'a b'}}"),
			[]string{`t.yaml:3:17: providers.hmac[0].name: invalid provider name "a b": use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit`}},
		{"unknown scheme", hmacDoc("{name: a, scheme: gitlab, "+hmacClient+"}", hmacStage),
			[]string{`t.yaml:3:28: providers.hmac[0].scheme: unknown scheme "gitlab": expected rfc9421, github, stripe, slack, generic`}},
		{"policy on a webhook", hmacDoc("{name: a, scheme: github, policy: {tag: x}, "+hmacClient+"}", hmacStage),
			[]string{`t.yaml:3:44: providers.hmac[0].policy: policy applies only to the rfc9421 scheme, not to github`}},
		{"options of other schemes", hmacDoc("{name: a, header: X-Sig, tolerance: 1m, replay_window: 1h, "+hmacClient+"}", hmacStage),
			[]string{
				`t.yaml:3:28: providers.hmac[0].header: header applies only to the github, stripe, slack and generic schemes, not to rfc9421`,
				`t.yaml:3:46: providers.hmac[0].tolerance: tolerance applies only to the stripe, slack and generic schemes, not to rfc9421`,
				`t.yaml:3:65: providers.hmac[0].replay_window: replay_window applies only to the github scheme, not to rfc9421`}},
		{"timestamp header on github", hmacDoc("{name: a, scheme: github, timestamp_header: 'X Ts', "+hmacClient+"}", hmacStage),
			[]string{
				`t.yaml:3:54: providers.hmac[0].timestamp_header: invalid header name "X Ts"`,
				`t.yaml:3:54: providers.hmac[0].timestamp_header: timestamp_header applies only to the slack and generic schemes, not to github`}},
		{"no clients", hmacDoc("{name: a}", hmacStage),
			[]string{`t.yaml:3:10: providers.hmac[0].clients: at least one client is required`}},
		{"client without subject and keys", hmacDoc("{name: a, clients: [{scopes: ['a b']}]}", hmacStage),
			[]string{
				`t.yaml:3:30: providers.hmac[0].clients[0].keys: at least one key is required`,
				`t.yaml:3:30: providers.hmac[0].clients[0].subject: subject is required`,
				`t.yaml:3:40: providers.hmac[0].clients[0].scopes[0]: invalid scope "a b": scopes are printable ASCII without spaces or quotes`}},
		{"key id shared by two clients", hmacDoc("{name: a, clients: [{subject: s, keys: [{id: k, secret: env:A}]}, {subject: t, keys: [{id: k, secret: env:B}]}]}", hmacStage),
			[]string{`t.yaml:3:101: providers.hmac[0].clients[1].keys[0].id: key id "k" also belongs to providers.hmac[0].clients[0]`}},
		{"bad key id", hmacDoc("{name: a, clients: [{subject: s, keys: [{id: 'k 1', secret: env:A}]}]}", hmacStage),
			[]string{`t.yaml:3:55: providers.hmac[0].clients[0].keys[0].id: invalid key id "k 1": 1 to 128 printable ASCII characters without spaces, quotes or backslashes`}},
		{"hmac without secret", hmacDoc("{name: a, clients: [{subject: s, keys: [{id: k}]}]}", hmacStage),
			[]string{`t.yaml:3:50: providers.hmac[0].clients[0].keys[0].secret: secret is required for hmac-sha256 (env:NAME or file:PATH)`}},
		{"hmac with public key", hmacDoc("{name: a, clients: [{subject: s, keys: [{id: k, secret: env:A, public_key: file:k.pem}]}]}", hmacStage),
			[]string{`t.yaml:3:85: providers.hmac[0].clients[0].keys[0].public_key: hmac-sha256 takes a secret, not a public key`}},
		{"asymmetric with secret", hmacDoc("{name: a, clients: [{subject: s, keys: [{id: k, algorithm: rsa-pss-sha512, public_key: file:k.pem, secret: env:A}]}]}", hmacStage),
			[]string{`t.yaml:3:117: providers.hmac[0].clients[0].keys[0].secret: rsa-pss-sha512 verifies with a public key; a shared secret is not used`}},
		{"public key not a reference", hmacDoc("{name: a, clients: [{subject: s, keys: [{id: k, algorithm: ed25519, public_key: 'MCowBQYDK2VwAyEA'}]}]}", hmacStage),
			[]string{`t.yaml:3:90: providers.hmac[0].clients[0].keys[0].public_key: secrets are given by reference: env:NAME or file:PATH`}},
		{"body limit", hmacDoc("{name: a, body_limit: 0, "+hmacClient+"}, {name: b, body_limit: 20000000, "+hmacClient+"}", hmacStage),
			[]string{
				`t.yaml:3:32: providers.hmac[0].body_limit: must be positive`,
				`t.yaml:3:117: providers.hmac[1].body_limit: 20000000 exceeds server.max_body_bytes (10485760): larger bodies are refused before verification`}},
		{"policy values", hmacDoc("{name: a, policy: {digest_required: yes, digest_algorithms: [md5], algorithms: [hs256], required_components: [''], label: Sig}, "+hmacClient+"}", hmacStage),
			[]string{
				`t.yaml:3:46: providers.hmac[0].policy.digest_required: invalid digest_required "yes": expected if_body, always or optional`,
				`t.yaml:3:71: providers.hmac[0].policy.digest_algorithms[0]: unknown digest algorithm "md5": expected sha-256 or sha-512`,
				`t.yaml:3:90: providers.hmac[0].policy.algorithms[0]: unknown algorithm "hs256": expected hmac-sha256, ed25519, ecdsa-p256-sha256, rsa-pss-sha512, rsa-v1_5-sha256`,
				`t.yaml:3:120: providers.hmac[0].policy.required_components[0]: component identifier is empty`,
				`t.yaml:3:132: providers.hmac[0].policy.label: invalid label "Sig": a lowercase letter or '*', then lowercase letters, digits, '_', '-', '.' or '*'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}

// A value written where a secret reference belongs is never echoed back.
func TestHMACSecretValueNotEchoed(t *testing.T) {
	const value = "hunter2-hunter2-hunter2"
	_, err := Parse("t.yaml", []byte(hmacDoc("{name: a, clients: [{subject: s, keys: [{id: k, secret: '"+value+"'}]}]}", hmacStage)))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}
