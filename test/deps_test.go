// Package test holds the end-to-end, conformance and load tests, and this test of the
// import rules of DESIGN.md §1.
package test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/portcullis/portcullis"

// deps returns the packages pkg depends on (transitively), as `go list -deps` reports.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// packages lists the module's packages matching pattern (relative, e.g. "filters/...").
func packages(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", module+"/"+pattern).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pattern, err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		pkgs = append(pkgs, strings.TrimPrefix(p, module+"/"))
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	type rule struct {
		pkgs    string   // pattern
		allowIn []string // module-internal prefixes allowed
		deny    []string // external module prefixes forbidden
	}
	envoy := "github.com/envoyproxy/"
	rules := []rule{
		{"pkg/engine", nil, []string{"go.uber.org/", "google.golang.org/", envoy, "gopkg.in/yaml", "github.com/spf13/", "github.com/valkey-io/"}},
		{"config/...", nil, []string{envoy, "google.golang.org/grpc", "github.com/valkey-io/", "go.uber.org/"}},
		{"proxy/...", []string{"pkg/engine", "pkg/telemetry", "proxy"}, []string{envoy}},
		{"pkg/forwardauth/...", []string{"pkg/engine", "pkg/telemetry", "pkg/forwardauth"}, []string{envoy}},
		{"pkg/extauthz/...", []string{"pkg/engine", "pkg/telemetry", "pkg/extauthz"}, nil},
		{"pkg/telemetry/...", []string{"pkg/engine", "pkg/telemetry"}, []string{envoy}},
	}
	for _, r := range rules {
		for _, pkg := range packages(t, r.pkgs) {
			for _, d := range deps(t, pkg) {
				if inner, ok := strings.CutPrefix(d, module+"/"); ok {
					if inner == pkg || strings.HasPrefix(inner, "pkg/engine") && !strings.HasPrefix(pkg, "pkg/engine") {
						continue
					}
					if r.allowIn == nil && inner != pkg {
						t.Errorf("%s imports %s; it may import nothing of the module", pkg, inner)
						continue
					}
					allowed := false
					for _, a := range r.allowIn {
						allowed = allowed || strings.HasPrefix(inner, a)
					}
					if !allowed && r.allowIn != nil {
						t.Errorf("%s imports %s (DESIGN.md §1)", pkg, inner)
					}
				}
				for _, bad := range r.deny {
					if strings.HasPrefix(d, bad) {
						t.Errorf("%s depends on %s (DESIGN.md §1)", pkg, d)
					}
				}
			}
		}
	}
}

// Filters import pkg/engine, pkg/store, pkg/telemetry and their own library; never
// config, a front-end, or another filter.
func TestFiltersImportNoFrontEndOrConfig(t *testing.T) {
	for _, pkg := range packages(t, "filters/...") {
		if pkg == "filters" {
			continue // the registry compiles config into filters
		}
		own := strings.SplitN(strings.TrimPrefix(pkg, "filters/"), "/", 2)[0]
		for _, d := range deps(t, pkg) {
			inner, ok := strings.CutPrefix(d, module+"/")
			if !ok {
				if strings.HasPrefix(d, "github.com/envoyproxy/") {
					t.Errorf("%s depends on Envoy protos via %s", pkg, d)
				}
				continue
			}
			switch {
			case strings.HasPrefix(inner, "pkg/engine"), strings.HasPrefix(inner, "pkg/store"),
				strings.HasPrefix(inner, "pkg/telemetry"), strings.HasPrefix(inner, "pkg/httpsig"),
				strings.HasPrefix(inner, "filters/"+own):
			default:
				t.Errorf("filter %s imports %s (DESIGN.md §1)", pkg, inner)
			}
		}
	}
}
