package filters

import (
	"strings"
	"testing"

	"github.com/portcullis/portcullis/pkg/store"
)

// bruteForceDoc is a policy with a bruteforce stage (banning at 4 failures) and an API
// key stage reading sources ("" for the default ones).
func bruteForceDoc(sources string) string {
	apikey := "{}"
	if sources != "" {
		apikey = "{sources: [" + sources + "]}"
	}
	return `
upstream: {url: http://127.0.0.1:8080}
providers:
  apikeys:
    - {id: k7f3a9c2, subject: billing, hash: "` + hashOf(testKey) + `"}
policies:
  api:
    inspect:
      - bruteforce: {low: 2, medium: 3, high: 4, critical: 8, delay: 1ms, max_delay: 2ms, status: 403}
    authenticate: [{apikey: ` + apikey + `}]
routes: [{name: api, policy: api}]
`
}

// wrongGuess is a wrong secret for the configured key k7f3a9c2.
var wrongGuess = "pk_k7f3a9c2_" + strings.Repeat("b", 56)

// guessFrom8Addresses sends eight requests built by req, each from its own address, and
// returns their statuses; the last is 403 when the key itself was banned.
func guessFrom8Addresses(t *testing.T, doc string, req func(i int) (target string, h map[string]string)) []int {
	t.Helper()
	e := buildWith(t, doc, Deps{Store: store.NewMemory(store.MemoryOptions{})})
	var got []int
	for i := range 8 {
		target, h := req(i)
		got = append(got, decideFrom(e, sprintf("198.51.100.%d", i+1), target, h).Status)
	}
	return got
}

// Guesses at one API key's secret from rotating addresses are counted against the key
// id. The API key authenticator skips an Authorization header that is not
// "Bearer pk_..." and reads X-API-Key; the count used to go to a hash of the junk
// Authorization value instead, so the key was never banned (found by a second reader's
// review).
func TestBruteForceCountsTheKeyTheAuthenticatorReads(t *testing.T) {
	for _, junk := range []bool{false, true} {
		got := guessFrom8Addresses(t, bruteForceDoc(""), func(i int) (string, map[string]string) {
			h := map[string]string{"X-API-Key": wrongGuess}
			if junk {
				h["Authorization"] = "Basic " + strings.Repeat("x", i+1)
			}
			return "/", h
		})
		if got[len(got)-1] != 403 {
			t.Errorf("junk Authorization %v: 8 failed guesses at key k7f3a9c2 from 8 addresses never banned the key: %v", junk, got)
		}
	}
}

// The same key id guessed through a configured query or custom-header source is
// counted per credential too (it was not: only Authorization and X-API-Key were read).
func TestBruteForceCountsKeysFromEverySource(t *testing.T) {
	for _, src := range []string{"{query: api_key}", "{header: X-Token}"} {
		got := guessFrom8Addresses(t, bruteForceDoc(src), func(int) (string, map[string]string) {
			if strings.Contains(src, "header") {
				return "/", map[string]string{"X-Token": wrongGuess}
			}
			return "/?api_key=" + wrongGuess, map[string]string{}
		})
		if got[len(got)-1] != 403 {
			t.Errorf("%s: 8 failed guesses at key k7f3a9c2 from 8 addresses never banned the key: %v", src, got)
		}
	}
}
