package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/pkg/telemetry"
	"github.com/portcullis/portcullis/test/redisharness"
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

// TestValkeyPasswordByReference: a store password given as env:NAME or file:PATH reaches
// a real server that requires it; a wrong one is refused and the limit's deny policy
// applies.
func TestValkeyPasswordByReference(t *testing.T) {
	srv := redisharness.StartWith(t, redisharness.Options{Password: "ref-secret"})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "valkey-password")
	if err := os.WriteFile(pwFile, []byte("ref-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Per hour: a decision's key then lives for minutes, so DBSIZE below still counts it
	// (at 10 per second it expired 100ms after the Take, and the count read 0 when the
	// machine was slow).
	lim := store.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	for i, c := range []struct {
		name, ref, env string
		served         bool
	}{
		{"env reference", "env:PC_TEST_VALKEY_REF", "ref-secret", true},
		{"file reference", "file:" + pwFile, "", true},
		{"wrong secret", "env:PC_TEST_VALKEY_REF", "not-the-secret", false},
	} {
		t.Setenv("PC_TEST_VALKEY_REF", c.env)
		doc := parseDoc(t, dir, `
upstream: {url: http://127.0.0.1:8080}
policies: {p: {anonymous: true}}
store: {valkey: {addresses: [`+srv.Addr()+`], password: "`+c.ref+`", timeout: 2s}}
`)
		st, err := newState(doc, zap.NewNop(), telemetry.NewAudit(zap.NewNop()), prometheus.NewRegistry())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		key := "ref:client-" + strconv.Itoa(i)
		_, err = st.limiter(store.PolicyDeny).Take(context.Background(), key, 1, lim)
		st.close()
		if served := err == nil; served != c.served {
			t.Fatalf("%s: served %v (%v), want %v", c.name, served, err, c.served)
		}
		if !c.served && !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v, want the deny policy's ErrUnavailable", c.name, err)
		}
	}
	if n, err := srv.Command("DBSIZE"); err != nil || n != "2" {
		t.Fatalf("server holds %q keys (%v), want the 2 served decisions' keys", n, err)
	}
}
