package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/telemetry"
)

func parseDoc(t *testing.T, dir, doc string) *config.Document {
	t.Helper()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeCA(t *testing.T, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestValkeyOptions(t *testing.T) {
	dir := t.TempDir()
	writeCA(t, filepath.Join(dir, "ca.pem"))
	t.Setenv("PC_TEST_VALKEY_PW", "s3cret")
	doc := parseDoc(t, dir, `
upstream: {url: http://127.0.0.1:8080}
policies: {p: {anonymous: true}}
store:
  valkey:
    mode: sentinel
    master_set: primary
    addresses: [127.0.0.1:26379]
    username: app
    password: env:PC_TEST_VALKEY_PW
    tls: {enabled: true, ca_file: ca.pem, server_name: valkey.internal}
`)
	o, err := valkeyOptions(&doc.Store.Valkey, dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Password) != "s3cret" || o.Username != "app" || o.MasterSet != "primary" || o.Timeout != 50*time.Millisecond ||
		o.TLS == nil || o.TLS.ServerName != "valkey.internal" || o.TLS.RootCAs == nil || o.TLS.InsecureSkipVerify {
		t.Errorf("options: %+v", o)
	}

	os.Unsetenv("PC_TEST_VALKEY_PW")
	if _, err := valkeyOptions(&doc.Store.Valkey, dir); err == nil || !strings.Contains(err.Error(), "env:PC_TEST_VALKEY_PW") {
		t.Errorf("unset secret: %v", err)
	}
	doc.Store.Valkey.TLS.CAFile = "missing.pem"
	t.Setenv("PC_TEST_VALKEY_PW", "s3cret")
	if _, err := valkeyOptions(&doc.Store.Valkey, dir); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
}

// The store is Valkey behind a Guard when configured, memory otherwise; the RLS tree
// is converted at every depth.
func TestNewState(t *testing.T) {
	dir := t.TempDir()
	doc := parseDoc(t, dir, `
upstream: {url: http://127.0.0.1:8080}
policies: {p: {anonymous: true}}
store: {valkey: {addresses: [127.0.0.1:1], timeout: 20ms, dial_timeout: 20ms}, replicas: 2}
rls:
  domains:
    - domain: d
      descriptors:
        - key: a
          descriptors:
            - {key: b, value: v, shadow_mode: true, rate_limit: {unit: MINUTE, requests_per_unit: 5, on_store_error: deny}}
`)
	st, err := newState(doc, zap.NewNop(), telemetry.NewAudit(zap.NewNop()), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if st.guard == nil || st.store != store.Store(st.guard) {
		t.Fatalf("valkey store not guarded: %T", st.store)
	}
	got := rlsDomains(&doc.RLS)
	b := got[0].Descriptors[0].Descriptors[0]
	if got[0].Name != "d" || b.Key != "b" || b.Value != "v" || !b.ShadowMode || b.RateLimit.Unit != "minute" ||
		b.RateLimit.RequestsPerUnit != 5 || b.RateLimit.OnStoreError != store.PolicyDeny {
		t.Errorf("rls conversion: %+v", got)
	}
	if err := st.checkRLS(doc); err != nil {
		t.Errorf("checkRLS: %v", err)
	}
	deps := st.deps()
	if deps.Store != st.store || deps.Limiter == nil || deps.OnRateLimited == nil || deps.OnBruteForce == nil {
		t.Errorf("deps: %+v", deps)
	}

	mem, err := newState(parseDoc(t, dir, "upstream: {url: http://127.0.0.1:8080}\npolicies: {p: {anonymous: true}}\n"),
		zap.NewNop(), telemetry.NewAudit(zap.NewNop()), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mem.store.(*store.Memory); !ok || mem.guard != nil {
		t.Errorf("memory store: %T", mem.store)
	}
	mem.close()
}
