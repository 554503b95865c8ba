package redisharness

import (
	"errors"
	"strings"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if err := s.ping(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	t.Log(s.Version())
	s.Stop()
	if err := s.ping(); err == nil {
		t.Fatal("server still answers after Stop")
	}
	s.Stop() // idempotent
	s.Restart()
	if err := s.ping(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
}

// TestCommandReplies: Command reads each kind of reply a setup step needs, and a server
// that requires a password counts as started (its PING answers NOAUTH).
func TestCommandReplies(t *testing.T) {
	locked := StartWith(t, Options{Args: []string{"--requirepass", "pw"}})
	if _, err := locked.Command("GET", "k"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("GET without AUTH: %v, want a NOAUTH error", err)
	}
	known := StartWith(t, Options{Password: "pw"})
	if got, err := known.Command("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING with the harness's password: %q, %v", got, err)
	}
	s := Start(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"SET", "k", "v\r\nw"}, "OK"}, // simple string; a value with CRLF travels as a bulk
		{[]string{"GET", "k"}, "v\r\nw"},       // bulk string
		{[]string{"INCR", "n"}, "1"},           // integer
		{[]string{"DBSIZE"}, "2"},
	} {
		got, err := s.Command(c.args...)
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	if got, err := s.Command("GET", "missing"); !errors.Is(err, ErrNil) {
		t.Errorf("GET of a missing key: %q, %v; want ErrNil", got, err)
	}
	if _, err := s.Command("NOSUCHCOMMAND"); err == nil || errors.Is(err, ErrNil) {
		t.Error("an unknown command did not return its error reply")
	}
}

// TestStartCluster: three primaries serve every slot.
func TestStartCluster(t *testing.T) {
	nodes := StartCluster(t, 3)
	info, err := nodes[2].Command("CLUSTER", "INFO")
	if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") || !strings.Contains(info, "cluster_known_nodes:3") {
		t.Fatalf("cluster info: %q %v", info, err)
	}
}

// A server whose port another server already has exits at start, while the other one
// answers its PING: start must not take the other server for it.
func TestPortTakenIsDetected(t *testing.T) {
	first := Start(t)
	second := &Server{t: t, bin: first.bin, dir: t.TempDir(), port: first.port}
	second.bus = first.port + 1
	t.Cleanup(second.Stop)
	err := second.start()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port: %v, want errPortTaken", err)
	}
}
