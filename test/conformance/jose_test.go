package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/filters/jwt"
)

// sharedDir locates the shared conformance data relative to this directory
// (test/conformance in /work/main, data in /work/shared/conformance).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "conformance"))
	if err != nil {
		t.Fatalf("conformance data: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("conformance data missing: expected the shared folder at %s (../shared/conformance "+
			"from the repository root): %v", dir, err)
	}
	return dir
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

type wycheproofFile struct {
	TestGroups []struct {
		Comment string          `json:"comment"`
		Private json.RawMessage `json:"private"`
		Public  json.RawMessage `json:"public"`
		Tests   []struct {
			TcID    int             `json:"tcId"`
			Comment string          `json:"comment"`
			JWS     json.RawMessage `json:"jws"`
			Result  string          `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// joseErrata are Wycheproof JWS cases whose label is wrong (conformance README). The
// value is what a correct verifier does; each entry is also checked to still be the
// known defect, so a fixed upstream file makes this test fail instead of hiding it.
var joseErrata = map[int]struct {
	accept bool
	why    string
}{
	367: {true, "byte-identical to valid tcId 357, labelled invalid"},
	370: {true, "byte-identical to valid tcId 357, labelled invalid"},
	372: {false, "contains '?', not base64url, labelled valid"},
	373: {false, "contains '?', not base64url, labelled valid"},
}

// runWycheproof verifies every case of one Wycheproof JOSE file and returns the counts.
func runWycheproof(t *testing.T, path string) (cases, accepted, rejected, errata int) {
	var f wycheproofFile
	readJSON(t, path, &f)
	byID := map[int]string{}
	for _, g := range f.TestGroups {
		key := g.Public
		if len(key) == 0 {
			key = g.Private
		}
		set, setErr := jwt.ParseKeySet(key)
		for _, tc := range g.Tests {
			cases++
			var token string
			ok := false
			if json.Unmarshal(tc.JWS, &token) == nil { // JSON serialization objects are not compact JWS
				byID[tc.TcID] = token
				if setErr == nil {
					_, _, err := set.VerifyJWS(token, jwt.AllAlgs)
					ok = err == nil
				}
			}
			want := tc.Result == "valid"
			if e, isErr := joseErrata[tc.TcID]; isErr && filepath.Base(path) == "json_web_signature_test.json" {
				errata++
				if want == e.accept {
					t.Errorf("tcId %d: erratum %q no longer present in the data", tc.TcID, e.why)
				}
				want = e.accept
			}
			if ok != want {
				t.Errorf("%s tcId %d (%s, group %s): accepted=%v want %v (set error: %v)",
					filepath.Base(path), tc.TcID, tc.Comment, g.Comment, ok, want, setErr)
			}
			if ok {
				accepted++
			} else {
				rejected++
			}
		}
	}
	if filepath.Base(path) == "json_web_signature_test.json" {
		if byID[367] != byID[357] || byID[370] != byID[357] {
			t.Errorf("errata 367/370 are no longer identical to tcId 357")
		}
	}
	return cases, accepted, rejected, errata
}

// TestJOSE runs every JOSE vector set and ends with one summary line.
func TestJOSE(t *testing.T) {
	dir := sharedDir(t)
	var sum struct{ cases, accepted, rejected, errata, examples, na int }
	t.Run("wycheproof-jws", func(t *testing.T) {
		n, acc, rej, errata := runWycheproof(t, filepath.Join(dir, "wycheproof", "json_web_signature_test.json"))
		t.Logf("wycheproof json_web_signature_test.json: %d cases, %d accepted, %d rejected, %d on the errata list (367, 370, 372, 373)",
			n, acc, rej, errata)
		if n != 401 {
			t.Errorf("expected 401 JWS cases, ran %d", n)
		}
		sum.cases, sum.accepted, sum.rejected, sum.errata = sum.cases+n, sum.accepted+acc, sum.rejected+rej, errata
	})
	t.Run("wycheproof-jwk", func(t *testing.T) {
		n, acc, rej, _ := runWycheproof(t, filepath.Join(dir, "wycheproof", "json_web_key_test.json"))
		t.Logf("wycheproof json_web_key_test.json: %d key-set cases, %d accepted, %d rejected", n, acc, rej)
		if n != 26 {
			t.Errorf("expected 26 key-set cases, ran %d", n)
		}
		sum.cases, sum.accepted, sum.rejected = sum.cases+n, sum.accepted+acc, sum.rejected+rej
	})
	t.Run("rfc-examples", func(t *testing.T) {
		sum.examples, sum.na = runExamples(t, filepath.Join(dir, "jose", "jose_examples.json"))
	})
	t.Logf("JOSE conformance summary: %d Wycheproof cases (%d accepted, %d rejected, %d errata), %d RFC examples checked, %d not applicable",
		sum.cases, sum.accepted, sum.rejected, sum.errata, sum.examples, sum.na)
}

type joseExamples struct {
	RFC7515 []struct {
		ID      string          `json:"id"`
		Alg     string          `json:"alg"`
		Payload string          `json:"payload"`
		Key     json.RawMessage `json:"key"`
		Compact string          `json:"compact"`
	} `json:"rfc7515_cases"`
	RFC7520 []struct {
		File    string          `json:"file"`
		Key     json.RawMessage `json:"key"`
		Payload string          `json:"payload"`
		Compact json.RawMessage `json:"compact"`
	} `json:"rfc7520_and_8037_cases"`
}

// rfc7515Clock is before the RFC 7515 payloads' exp (1300819380, 2011-03-22T18:43Z).
var rfc7515Clock = time.Date(2011, 3, 22, 18, 0, 0, 0, time.UTC)

// runExamples verifies the RFC 7515 A.1-A.5, RFC 7520 4.1-4.8 and RFC 8037 examples.
func runExamples(t *testing.T, path string) (checked, notApplicable int) {
	var ex joseExamples
	readJSON(t, path, &ex)
	for _, c := range ex.RFC7515 {
		checked++
		if c.Alg == "none" {
			if _, err := jwt.ParseCompact(c.Compact); err == nil {
				t.Errorf("%s: an unsecured JWS was accepted", c.ID)
			}
			continue
		}
		verifyExample(t, c.ID, c.Key, c.Compact, c.Payload)
		if strings.HasPrefix(c.Payload, "{") {
			checkRFC7515Claims(t, c.ID, c.Alg, c.Key, c.Compact)
		}
	}
	for _, c := range ex.RFC7520 {
		var compact string
		if json.Unmarshal(c.Compact, &compact) != nil || compact == "" {
			notApplicable++ // 4.6-4.8: JSON serialization only
			continue
		}
		checked++
		if strings.Contains(c.File, "detached") {
			// 4.5: the payload is detached, so the compact form does not verify alone.
			set, err := jwt.ParseKeySet(c.Key)
			if err == nil {
				if _, _, err := set.VerifyJWS(compact, jwt.AllAlgs); err == nil {
					t.Errorf("%s: a detached-content JWS verified without its payload", c.File)
				}
			}
			continue
		}
		verifyExample(t, c.File, c.Key, compact, c.Payload)
	}
	t.Logf("JOSE examples: %d checked (RFC 7515 A.1-A.5, RFC 7520 4.1-4.5, RFC 8037 A.4), %d JSON-serialization-only not applicable",
		checked, notApplicable)
	return checked, notApplicable
}

func verifyExample(t *testing.T, id string, key json.RawMessage, compact, payload string) {
	t.Helper()
	set, err := jwt.ParseKeySet(key)
	if err != nil {
		t.Errorf("%s: key: %v", id, err)
		return
	}
	c, _, err := set.VerifyJWS(compact, jwt.AllAlgs)
	if err != nil {
		t.Errorf("%s: %v", id, err)
		return
	}
	if string(c.Payload) != payload {
		t.Errorf("%s: payload %q", id, c.Payload)
	}
}

// checkRFC7515Claims runs the full JWT validation on a JSON payload: valid with the
// clock frozen in 2011, expired today.
func checkRFC7515Claims(t *testing.T, id, alg string, key json.RawMessage, compact string) {
	t.Helper()
	for _, tc := range []struct {
		now    time.Time
		reason string
	}{{rfc7515Clock, ""}, {time.Now(), jwt.ReasonExpired}} {
		now := tc.now
		a, err := jwt.New(jwt.Options{
			Name: "rfc7515", Issuer: "joe", Algorithms: []string{alg}, SubjectClaim: "iss",
			Keys: jwt.KeysOptions{JWKS: key}, Now: func() time.Time { return now },
		})
		if err != nil {
			t.Errorf("%s: %v", id, err)
			return
		}
		id2, err := a.Check(context.Background(), compact)
		var ve *jwt.VerifyError
		switch {
		case tc.reason == "" && (err != nil || id2.Claims["http://example.com/is_root"] != true):
			t.Errorf("%s at %s: %v", id, now.Format(time.RFC3339), err)
		case tc.reason != "" && (!errors.As(err, &ve) || ve.Reason != tc.reason):
			t.Errorf("%s at %s: got %v, want %s", id, now.Format(time.RFC3339), err, tc.reason)
		}
	}
}
