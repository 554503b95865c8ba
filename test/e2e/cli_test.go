package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wantLines reads the "# want: " lines of a fixture.
func wantLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, w)
		}
	}
	return want
}

// Every invalid-config fixture, through the binary: exit 1 and exactly the expected
// FILE:LINE:COL: path: message lines on stderr, nothing on stdout.
func TestValidateRejectsBadConfig(t *testing.T) {
	dir := repoPath("config", "testdata", "errors")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want := wantLines(t, f)
			if len(want) == 0 {
				t.Fatalf("%s has no '# want:' lines", name)
			}
			cmd := exec.Command(binary, "validate", "--config", name)
			cmd.Dir = dir
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v (stdout %q)", err, out.String())
			}
			got := strings.Split(strings.TrimRight(errb.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if out.Len() != 0 {
				t.Fatalf("stdout: %q", out.String())
			}
		})
	}
}

// Every example document must validate (examples are loaded by a test, DESIGN.md §9).
func TestValidateExamples(t *testing.T) {
	files, _ := filepath.Glob(repoPath("examples", "*", "*.yaml"))
	files = append(files, repoPath("config", "testdata", "valid_full.yaml"))
	for _, f := range files {
		code, out, errs := runCLI(t, "validate", "--config", f)
		if code != 0 || !strings.Contains(out, ": valid: ") {
			t.Errorf("%s: exit %d\n%s%s", f, code, out, errs)
		}
	}
}

func TestCLIHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"validate", "--help"},
		{"keys", "new", "--help"}, {"version", "--help"}} {
		if code, out, errs := runCLI(t, args...); code != 0 || out+errs == "" {
			t.Errorf("%v: exit %d", args, code)
		}
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "portcullis ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "nonsense"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

// A stray argument is refused: "validate new.yaml" used to ignore new.yaml and check
// the default (or PORTCULLIS_CONFIG) document, so a CI gate written that way passed a
// broken file (found by a second reader's review).
func TestCLIRefusesStrayArguments(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("a: b: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", broken}, {"serve", broken}, {"keys", "new", "--subject", "a", "extra"}, {"version", "extra"}} {
		if code, _, errs := runCLI(t, args...); code != 2 || !strings.Contains(errs, "unexpected argument") {
			t.Errorf("%v: exit %d, want 2 with the argument named (%s)", args, code, errs)
		}
	}
}

// keys new prints a key once and a config entry holding only its hash; the entry
// validates and the key authenticates (checked by the quickstart tests for the demo key).
func TestKeysNew(t *testing.T) {
	code, out, errs := runCLI(t, "keys", "new", "--subject", "billing", "--scopes", "invoices:read,invoices:write", "--expires", "720h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var key string
	for _, l := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(l, "# key: "); ok {
			key = k
		}
	}
	if !strings.HasPrefix(key, "pk_") || len(key) != 68 {
		t.Fatalf("key %q", key)
	}
	entry := out[strings.Index(out, "- id: "):]
	if strings.Contains(entry, key) || !strings.Contains(entry, `hash: "sha512:`) || !strings.Contains(entry, "expires: ") {
		t.Fatalf("entry:\n%s", entry)
	}
	doc := "upstream: {url: http://127.0.0.1:8080}\nproviders:\n  apikeys:\n" + indent(entry, "    ") +
		"policies:\n  api:\n    authenticate: [{apikey: {}}]\nroutes:\n  - {name: api, policy: api}\n"
	path := filepath.Join(t.TempDir(), "k.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "validate", "--config", path); code != 0 {
		t.Fatalf("generated entry does not validate: %s%s\n%s", out, errs, doc)
	}
	if code, _, _ := runCLI(t, "keys", "new"); code != 2 {
		t.Fatalf("missing --subject: exit %d", code)
	}
}

func indent(s, by string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(by + l + "\n")
	}
	return b.String()
}
