package valkeystore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/store"
	"github.com/portcullis/portcullis/test/redisharness"
)

// exercise runs every store operation once against s and checks the answers: GCRA
// admits the burst and refuses the next, and once-sets, counters and bans work.
func exercise(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	lim := store.Limit{Rate: 2, Period: time.Minute, Burst: 2}
	for i, want := range []bool{true, true, false} {
		res, err := s.Take(ctx, "mode-limit:client", 1, lim)
		if err != nil {
			t.Fatalf("Take %d: %v", i, err)
		}
		if res.Allowed != want {
			t.Fatalf("Take %d: allowed %v, want %v", i, res.Allowed, want)
		}
	}
	if first, err := s.Once(ctx, "jti:mode", time.Minute); err != nil || !first {
		t.Fatalf("Once: %v %v", first, err)
	}
	if n, err := s.Incr(ctx, "bf:mode", time.Minute); err != nil || n != 1 {
		t.Fatalf("Incr: %d %v", n, err)
	}
	if err := s.Ban(ctx, "bf:mode", time.Minute); err != nil {
		t.Fatalf("Ban: %v", err)
	}
	if b, _, err := s.Banned(ctx, "bf:mode"); err != nil || !b {
		t.Fatalf("Banned: %v %v", b, err)
	}
}

// newModeStore is New with o and a test's timeouts, closed at the end of the test.
func newModeStore(t *testing.T, o Options) (*Store, error) {
	t.Helper()
	o.KeyPrefix, o.Timeout, o.DialTimeout = "test:", 2*time.Second, 2*time.Second
	s, err := New(o)
	if err == nil {
		t.Cleanup(s.Close)
	}
	return s, err
}

// TestAuth: an ACL user with its password is served; a wrong or missing password is
// refused with the server's reason, which never echoes the secret.
func TestAuth(t *testing.T) {
	srv := redisharness.StartWith(t, redisharness.Options{Password: "default-secret", Args: []string{
		"--user", "app", "on", ">app-secret", "~*", "&*", "+@all",
	}})
	s, err := newModeStore(t, Options{Addrs: []string{srv.Addr()}, Username: "app", Password: []byte("app-secret")})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s)

	for name, o := range map[string]Options{
		"wrong password": {Username: "app", Password: []byte("guessed-secret")},
		"no password":    {},
	} {
		o.Addrs = []string{srv.Addr()}
		assertAuthRefused(t, name, firstCall(t, o), "guessed-secret", "app-secret")
	}
}

// firstCall connects a store with o and makes one decision: the error of whichever
// failed, nil when both worked.
func firstCall(t *testing.T, o Options) error {
	t.Helper()
	s, err := newModeStore(t, o)
	if err == nil {
		_, err = s.Take(context.Background(), "mode-limit:client", 1, store.Limit{Rate: 1, Period: time.Second, Burst: 1})
	}
	return err
}

// assertAuthRefused checks that err is the server's authentication refusal (NOAUTH or
// WRONGPASS) and holds none of secrets.
func assertAuthRefused(t *testing.T, name string, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: served", name)
	}
	msg := err.Error()
	if !strings.Contains(msg, "WRONGPASS") && !strings.Contains(msg, "NOAUTH") {
		t.Errorf("%s: error %q does not give the server's reason", name, msg)
	}
	for _, secret := range secrets {
		if strings.Contains(msg, secret) {
			t.Errorf("%s: error %q echoes a secret", name, msg)
		}
	}
}

// TestTLS: a server that only speaks TLS is served when its CA is trusted and refused
// when it is not.
func TestTLS(t *testing.T) {
	files, trusted := writeServerCert(t, t.TempDir())
	srv := redisharness.StartWith(t, redisharness.Options{TLS: files})
	s, err := newModeStore(t, Options{Addrs: []string{srv.Addr()}, TLS: trusted})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s)

	untrusted := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	err = firstCall(t, Options{Addrs: []string{srv.Addr()}, TLS: untrusted})
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("untrusted CA: %v, want the certificate refused as signed by an unknown authority", err)
	}
}

// TestCluster: in cluster mode every operation works, one limit's keys share a hash
// slot (so its script call stays on one shard), and different limits spread over the
// shards.
func TestCluster(t *testing.T) {
	nodes := redisharness.StartCluster(t, 3)
	s, err := newModeStore(t, Options{Mode: ModeCluster, Addrs: []string{nodes[0].Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s)

	ctx := context.Background()
	// A key lives as long as its TAT is ahead of now: one cost of this limit keeps it
	// 36 s. At 100/s it lived 10 ms, and under load Redis's expiry removed keys before
	// they were counted.
	lim := store.Limit{Rate: 100, Period: time.Hour, Burst: 100}
	for _, client := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if _, err := s.Take(ctx, "one-limit:"+client, 1, lim); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := nodes[0].Command("CLUSTER", "KEYSLOT", s.key("rl", "one-limit:10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	holders := 0
	for _, n := range nodes {
		c, err := n.Command("CLUSTER", "COUNTKEYSINSLOT", slot)
		if err != nil {
			t.Fatal(err)
		}
		switch c {
		case "0":
		case "3":
			holders++
		default:
			t.Fatalf("node %s holds %s of one limit's 3 keys: split across shards", n.Addr(), c)
		}
	}
	if holders != 1 {
		t.Fatalf("one limit's 3 keys are on %d nodes, want 1", holders)
	}

	// Only the 30 limits below count: the keys above already sit on two shards.
	for _, n := range nodes {
		if _, err := n.Command("FLUSHALL"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		if _, err := s.Take(ctx, "limit-"+strconv.Itoa(i)+":client", 1, lim); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for _, n := range nodes {
		if c, err := n.Command("DBSIZE"); err != nil {
			t.Fatal(err)
		} else if c != "0" {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("30 limits landed on %d of 3 shards", used)
	}
}

// TestSentinel: in sentinel mode the store asks the sentinel for the primary and
// writes there, authenticating to each with its own password; a missing one is
// refused with the server's reason, which never echoes a secret.
func TestSentinel(t *testing.T) {
	primary := redisharness.StartWith(t, redisharness.Options{Password: "primary-secret"})
	sentinel := redisharness.StartWith(t, redisharness.Options{
		Password: "sentinel-secret",
		Sentinel: &redisharness.Sentinel{Name: "portcullis-primary", Primary: primary.Addr(), AuthPass: "primary-secret"},
	})
	o := Options{Mode: ModeSentinel, Addrs: []string{sentinel.Addr()}, MasterSet: "portcullis-primary",
		Password: []byte("primary-secret"), SentinelPassword: []byte("sentinel-secret")}
	s, err := newModeStore(t, o)
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, s)
	if n, err := primary.Command("DBSIZE"); err != nil || n == "0" {
		t.Fatalf("primary holds %q keys (%v): the store did not write through the sentinel's primary", n, err)
	}

	for name, mod := range map[string]func(*Options){
		"no sentinel password": func(o *Options) { o.SentinelPassword = nil },
		"no primary password":  func(o *Options) { o.Password = nil },
	} {
		bad := o
		mod(&bad)
		assertAuthRefused(t, name, firstCall(t, bad), "secret")
	}
}

// writeServerCert writes a CA and a server certificate for 127.0.0.1 under dir, and
// returns the server's files and a client configuration trusting the CA.
func writeServerCert(t *testing.T, dir string) (*redisharness.TLSFiles, *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portcullis test ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &redisharness.TLSFiles{
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
		CAFile:   filepath.Join(dir, "ca.pem"),
	}
	for path, block := range map[string]*pem.Block{
		f.CertFile: {Type: "CERTIFICATE", Bytes: der},
		f.KeyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
		f.CAFile:   {Type: "CERTIFICATE", Bytes: caDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	f.Client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return f, f.Client
}

// TestSentinelFailover: when the primary dies, the sentinel promotes its replica and
// the store follows it without being recreated: calls fail while no primary answers
// and succeed again on the new one.
func TestSentinelFailover(t *testing.T) {
	primary := redisharness.Start(t)
	replica := redisharness.StartWith(t, redisharness.Options{Args: []string{
		"--replicaof", "127.0.0.1", strings.TrimPrefix(primary.Addr(), "127.0.0.1:"),
	}})
	waitFor(t, "the replica to sync", func() bool {
		info, err := primary.Command("INFO", "replication")
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	sentinel := redisharness.StartWith(t, redisharness.Options{
		Sentinel: &redisharness.Sentinel{Name: "portcullis-primary", Primary: primary.Addr()},
	})
	// The sentinel learns of the replica from the primary; a failover before that would
	// find nothing to promote.
	waitFor(t, "the sentinel to know the replica", func() bool {
		info, err := sentinel.Command("INFO", "sentinel")
		return err == nil && strings.Contains(info, "slaves=1")
	})
	s, err := newModeStore(t, Options{Mode: ModeSentinel, Addrs: []string{sentinel.Addr()}, MasterSet: "portcullis-primary"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lim := store.Limit{Rate: 1000, Period: time.Second, Burst: 1000}
	if _, err := s.Take(ctx, "failover:client", 1, lim); err != nil {
		t.Fatal(err)
	}

	primary.Stop()
	failed := false
	waitWithin(t, 30*time.Second, "the store to answer from the promoted replica", func() bool {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := s.Take(c, "failover:client", 1, lim)
		failed = failed || err != nil
		return err == nil
	})
	if !failed {
		t.Error("no call failed while the primary was down: the test did not exercise a failover")
	}
	if info, err := replica.Command("INFO", "replication"); err != nil || !strings.Contains(info, "role:master") {
		t.Fatalf("the replica was not promoted: %q %v", info, err)
	}
}
