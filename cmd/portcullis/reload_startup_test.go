package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

func writeDefaultStatus(t *testing.T, path string, status string) {
	t.Helper()
	doc := "listeners: {proxy: \"\", grpc: \"\", admin: \"\"}\npolicies: {p: {anonymous: true}}\ndefault: {status: " + status + "}\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serve loads the document and applies it; the running version must be the content that
// was loaded. apply used to re-read the file for its hash, so a file changed in between
// (a ConfigMap update during startup) was recorded as running while the old content
// ran, and the poll never loaded it (found by a second reader's review).
func TestStartupRecordsTheContentItRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	writeDefaultStatus(t, path, "404")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	boot := config.NewBootstrap(fs)
	if err := fs.Parse([]string{"-config", path}); err != nil {
		t.Fatal(err)
	}
	doc, err := boot.Load() // as runServe does
	if err != nil {
		t.Fatal(err)
	}
	writeDefaultStatus(t, path, "403") // the file is updated before apply runs
	log := zap.NewNop()
	s := newServer(boot, log, telemetry.NewDecisionLog(log))
	if err := s.apply(doc); err != nil {
		t.Fatal(err)
	}
	defer s.state.close()
	s.reload.check(false) // the next poll
	if got := s.reload.running.Default.Status; got != 403 {
		t.Fatalf("file says default status 403, running document has %d and the poll does not reload it", got)
	}
}
