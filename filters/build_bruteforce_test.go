package filters

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis/portcullis/filters/bruteforce"
	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/store"
)

// An attacker guessing keys from one address is delayed, then banned before its
// credential is even looked at; a legitimate client elsewhere is not affected.
func TestBuildBruteForce(t *testing.T) {
	doc := `
upstream: {url: http://127.0.0.1:8080}
providers:
  apikeys:
    - {id: k7f3a9c2, subject: billing, hash: "` + hashOf(testKey) + `"}
policies:
  api:
    inspect:
      - bruteforce: {low: 2, medium: 3, high: 4, critical: 8, delay: 1ms, max_delay: 2ms, status: 403, allowlist: [203.0.113.0/24]}
    authenticate: [{apikey: {}}]
routes: [{name: api, policy: api}]
`
	var mu sync.Mutex
	var events []bruteforce.Event
	e := buildWith(t, doc, Deps{Store: store.NewMemory(store.MemoryOptions{}), OnBruteForce: func(ev bruteforce.Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	bad := func(i int) map[string]string {
		return map[string]string{"Authorization": "Bearer pk_guess" + string(rune('a'+i)) + "_" + strings.Repeat("b", 56)}
	}
	var got []int
	for i := range 6 {
		got = append(got, decideFrom(e, "198.51.100.7", "/", bad(i)).Status)
	}
	if want := []int{401, 401, 401, 401, 403, 403}; !equalInts(got, want) {
		t.Fatalf("attacker statuses %v, want %v", got, want)
	}
	d := decideFrom(e, "198.51.100.7", "/", map[string]string{"X-API-Key": testKey})
	if d.Status != 403 || d.Reason != bruteforce.ReasonBanned || d.Response.Get("Retry-After") == "" {
		t.Fatalf("banned client with a good key: %d %s %v", d.Status, d.Reason, d.Response)
	}
	if d := decideFrom(e, "198.51.100.8", "/", map[string]string{"X-API-Key": testKey}); !d.Allow {
		t.Fatalf("good client: %d %s", d.Status, d.Reason)
	}
	for i := range 6 { // allowlisted: never banned
		if d := decideFrom(e, "203.0.113.5", "/", bad(i)); d.Status != 401 {
			t.Fatalf("allowlisted attempt %d: %d", i, d.Status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var ipLevels []string
	banned := false
	for _, ev := range events {
		if ev.Kind == "ip" {
			ipLevels = append(ipLevels, ev.Level.String())
			banned = banned || ev.Ban > 0
		}
		if strings.Contains(ev.Key, "guess") {
			t.Errorf("event key holds the credential: %+v", ev)
		}
	}
	if strings.Join(ipLevels, ",") != "low,medium,high" || !banned {
		t.Errorf("ip events %v banned %v", ipLevels, banned)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var credentialShape = regexp.MustCompile(`^(apikey:[a-z0-9]{4,32}|h:[0-9a-f]{32})$`)

func TestCredentialID(t *testing.T) {
	secret := strings.Repeat("s", 56)
	tests := []struct {
		hdr  map[string]string
		want string
	}{
		{map[string]string{"Authorization": "Bearer pk_k7f3a9c2_" + secret}, "apikey:k7f3a9c2"},
		{map[string]string{"Authorization": "bearer   pk_abcd_short"}, "apikey:abcd"},
		{map[string]string{"X-API-Key": "pk_k7f3a9c2_" + secret}, "apikey:k7f3a9c2"},
		{map[string]string{"X-API-Key": "pk_ABCD_" + secret}, hashedCredential("pk_ABCD_" + secret)},
		{map[string]string{"Authorization": "Bearer eyJhbGciOi.x.y"}, hashedCredential("eyJhbGciOi.x.y")},
		{map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, hashedCredential("Basic dXNlcjpwYXNz")},
		{map[string]string{"Authorization": "Bearer pk_abc_" + secret}, hashedCredential("pk_abc_" + secret)},
		{nil, ""},
	}
	for _, tc := range tests {
		r := &engine.Request{Header: map[string][]string{}}
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if got := credentialID(r); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.hdr, got, tc.want)
		}
	}
}

// The credential id never carries a secret: it is a key id or a hash.
func FuzzCredentialID(f *testing.F) {
	for _, s := range []string{"Bearer pk_k7f3a9c2_" + strings.Repeat("a", 56), "pk_x_y", "Basic Zm9v", "pk__", "Bearer ", "pk_abcd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, h := range []string{"Authorization", "X-Api-Key"} {
			r := &engine.Request{Header: map[string][]string{h: {v}}}
			got := credentialID(r)
			if v == "" {
				continue
			}
			if !credentialShape.MatchString(got) {
				t.Fatalf("%s: %q -> %q", h, v, got)
			}
			// An id is exactly what lies between the prefix and the first '_': nothing
			// of the secret after it.
			if id, ok := strings.CutPrefix(got, "apikey:"); ok {
				tok := v
				if h == "Authorization" {
					tok, _ = bearerToken(v)
				}
				if !strings.HasPrefix(tok, "pk_"+id+"_") {
					t.Fatalf("%q -> %q is not the key's id", v, got)
				}
			}
		}
	})
}
