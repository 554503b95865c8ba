package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		err  string
	}{
		{"100/s", Rate{100, time.Second}, ""},
		{"1/second", Rate{1, time.Second}, ""},
		{"1000/min", Rate{1000, time.Minute}, ""},
		{" 5 / h ", Rate{5, time.Hour}, ""},
		{"10000/day", Rate{10000, 24 * time.Hour}, ""},
		{"1000000000/s", Rate{1_000_000_000, time.Second}, ""},
		{"1000000001/s", Rate{}, "count must be"},
		{"0/s", Rate{}, "count must be"},
		{"-1/s", Rate{}, "count must be"},
		{"1.5/s", Rate{}, "count must be"},
		{"10/week", Rate{}, `unknown unit "week"`},
		{"10/m", Rate{}, `unknown unit "m"`}, // ambiguous: minute or month
		{"10", Rate{}, "expected N/s"},
		{"", Rate{}, "expected N/s"},
	}
	for _, tc := range tests {
		got, err := ParseRate(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseRate(%q) error %v; want %q", tc.in, err, tc.err)
		}
	}
	if s := (Rate{1000, time.Minute}).String(); s != "1000/min" {
		t.Errorf("String = %q", s)
	}
}

func TestParseKeyPart(t *testing.T) {
	tests := []struct {
		in   string
		want RateLimitKeyPart
		err  bool
	}{
		{"client_ip", RateLimitKeyPart{Kind: KeyClientIP}, false},
		{"client_ip_net", RateLimitKeyPart{Kind: KeyClientIPNet}, false},
		{"subject", RateLimitKeyPart{Kind: KeySubject}, false},
		{"api_key", RateLimitKeyPart{Kind: KeyAPIKey}, false},
		{"route", RateLimitKeyPart{Kind: KeyRoute}, false},
		{"method", RateLimitKeyPart{Kind: KeyMethod}, false},
		{"path", RateLimitKeyPart{Kind: KeyPath}, false},
		{"header:x-tenant", RateLimitKeyPart{Kind: KeyHeader, Header: "X-Tenant"}, false},
		{"header:", RateLimitKeyPart{}, true},
		{"header:a b", RateLimitKeyPart{}, true},
		{"header", RateLimitKeyPart{}, true},
		{"ip", RateLimitKeyPart{}, true},
		{"Client_IP", RateLimitKeyPart{}, true},
	}
	for _, tc := range tests {
		got, err := ParseKeyPart(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseKeyPart(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "1/day", "0/s", "x/y", "/", "99999999999999999999/s", "1/ min"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Count == 0 || r.Count > maxRateCount || r.Period < time.Second {
			t.Fatalf("ParseRate(%q) accepted %+v", s, r)
		}
		if back, err := ParseRate(r.String()); err != nil || back != r {
			t.Fatalf("round trip of %q: %v %v", s, back, err)
		}
	})
}

func FuzzParseKeyPart(f *testing.F) {
	for _, s := range []string{"client_ip", "header:X-A", "header:", "header:a:b", "path"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseKeyPart(s)
		if err != nil {
			return
		}
		if p.Kind == KeyHeader && !isToken(p.Header) {
			t.Fatalf("ParseKeyPart(%q) accepted header %q", s, p.Header)
		}
		if back, err := ParseKeyPart(p.String()); err != nil || back != p {
			t.Fatalf("round trip of %q: %+v %v", s, back, err)
		}
	})
}

const rateLimitDoc = `
upstream: {url: http://127.0.0.1:8080}
store:
  valkey:
    addresses: [127.0.0.1:6379]
    password: env:VALKEY_PASSWORD
    timeout: 20ms
  replicas: 3
rls:
  headers_on_ok: true
  domains:
    - domain: edge
      descriptors:
        - key: remote_address
          rate_limit: {unit: second, requests_per_unit: 50}
        - key: tenant
          descriptors:
            - key: user
              shadow_mode: true
              rate_limit: {unit: HOUR, requests_per_unit: 1000, on_store_error: deny}
              descriptors:
                - {key: method, value: POST, rate_limit: {unlimited: true}}
policies:
  api:
    anonymous: true
    inspect:
      - bruteforce: {low: 3, medium: 6, high: 9, critical: 12, allowlist: [10.0.0.0/8]}
      - ratelimit:
          limits:
            - {name: per-ip, key: client_ip, rate: 100/s, burst: 200}
            - {name: global, rate: 1000/min, shadow: true, on_store_error: allow}
    limit:
      - ratelimit:
          headers_on_allow: true
          limits: [{name: per-user, key: [subject, "header:x-tenant"], rate: 10/h}]
`

func TestRateLimitSectionsDecode(t *testing.T) {
	doc, err := Parse("rl.yaml", []byte(rateLimitDoc))
	if err != nil {
		t.Fatal(err)
	}
	st := doc.Store
	if !st.Shared() || st.Replicas != 3 || st.Valkey.Timeout != 20*time.Millisecond || st.Valkey.Mode != StoreModeStandalone ||
		st.Valkey.DialTimeout != time.Second || st.Valkey.KeyPrefix != "portcullis:" || st.Memory.MaxKeys != DefaultMemoryMaxKeys {
		t.Errorf("store: %+v", st)
	}
	if got := fmt.Sprint(st.Valkey.Password); got != "[redacted env:VALKEY_PASSWORD]" {
		t.Errorf("password printed as %s", got)
	}
	user := doc.RLS.Domains[0].Descriptors[1].Descriptors.List[0]
	if user.Key != "user" || !user.ShadowMode || user.RateLimit.RequestsPerUnit != 1000 || user.RateLimit.OnStoreError != "deny" ||
		len(user.Descriptors.List) != 1 || !user.Descriptors.List[0].RateLimit.Unlimited || !doc.RLS.HeadersOnOK {
		t.Errorf("nested descriptor: %+v", user)
	}
	pol := doc.Policies["api"]
	bf := pol.Inspect[0].Spec.(*BruteForceStage)
	if bf.Low != 3 || bf.Critical != 12 || bf.Delay != 250*time.Millisecond || bf.Status != 429 || len(bf.Allowlist) != 1 {
		t.Errorf("bruteforce: %+v", bf)
	}
	rl := pol.Inspect[1].Spec.(*RateLimitStage)
	if l := rl.Limits[0]; l.Rate != (Rate{100, time.Second}) || l.Burst != 200 || len(l.Key) != 1 || l.Key[0].Kind != KeyClientIP || l.OnStoreError != "local" {
		t.Errorf("per-ip: %+v", l)
	}
	if l := rl.Limits[1]; len(l.Key) != 0 || !l.Shadow || l.OnStoreError != "allow" {
		t.Errorf("global: %+v", l)
	}
	lim := pol.Limit[0].Spec.(*RateLimitStage)
	if l := lim.Limits[0]; !lim.HeadersOnAllow || len(l.Key) != 2 || l.Key[1] != (RateLimitKeyPart{Kind: KeyHeader, Header: "X-Tenant"}) {
		t.Errorf("per-user: %+v", lim)
	}
}

func TestStoreDefaultsToMemory(t *testing.T) {
	doc, err := Parse("m.yaml", []byte("upstream: {url: http://127.0.0.1:8080}\npolicies: {p: {anonymous: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Store.Shared() || doc.Store.Replicas != 1 || len(doc.RLS.Domains) != 0 {
		t.Errorf("defaults: %+v %+v", doc.Store, doc.RLS)
	}
}

// Nested descriptors are validated at every depth, and an error deep down is placed.
func TestRLSDeepDescriptorErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("upstream: {url: http://127.0.0.1:8080}\npolicies: {p: {anonymous: true}}\nrls:\n  domains:\n    - domain: d\n      descriptors:\n")
	indent := "        "
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "%s- key: k%d\n%s  descriptors:\n", indent, i, indent)
		indent += "    "
	}
	fmt.Fprintf(&b, "%s- {key: last, rate_limit: {unit: eon, requests_per_unit: 1}}\n", indent)
	_, err := Parse("deep.yaml", []byte(b.String()))
	want := "deep.yaml:19:66: rls.domains[0]" + strings.Repeat(".descriptors[0]", 7) + ".rate_limit.unit: invalid unit \"eon\""
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v\nwant %s...", err, want)
	}
}
