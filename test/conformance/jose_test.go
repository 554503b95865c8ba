package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

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

func TestWycheproofJWS(t *testing.T) {
	dir := sharedDir(t)
	n, acc, rej, errata := runWycheproof(t, filepath.Join(dir, "wycheproof", "json_web_signature_test.json"))
	t.Logf("wycheproof json_web_signature_test.json: %d cases, %d accepted, %d rejected, %d on the errata list (367, 370, 372, 373)",
		n, acc, rej, errata)
	if n != 401 {
		t.Errorf("expected 401 JWS cases, ran %d", n)
	}
}

func TestWycheproofJWK(t *testing.T) {
	dir := sharedDir(t)
	n, acc, rej, _ := runWycheproof(t, filepath.Join(dir, "wycheproof", "json_web_key_test.json"))
	t.Logf("wycheproof json_web_key_test.json: %d key-set cases, %d accepted, %d rejected", n, acc, rej)
	if n != 26 {
		t.Errorf("expected 26 key-set cases, ran %d", n)
	}
}
