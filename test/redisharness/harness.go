// Package redisharness starts throwaway valkey-server or redis-server processes on free
// loopback ports for tests, without persistence, and stops them when the test ends:
// Start for a plain server; StartWith for one with extra arguments, TLS only, cluster
// mode or as a sentinel; StartCluster for a cluster of primaries with its slots
// assigned. Each server works in its own temporary directory (a cluster node's
// nodes.conf and a sentinel's sentinel.conf live there).
//
// When neither binary is on PATH (or at /usr/bin), Start skips the test, or fails it
// when the environment variable CI is "true", so CI cannot silently skip store tests.
package redisharness

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// Options set a server up beyond a plain standalone one. The zero value is Start's.
type Options struct {
	// Args are extra server arguments, e.g. "--requirepass", "pw".
	Args []string
	// TLS, when set, makes the server accept TLS only, on its port, with these files.
	TLS *TLSFiles
	// Cluster enables cluster mode (its nodes file in the server's directory, its bus
	// on a port of its own); see StartCluster for a cluster whose slots are assigned.
	Cluster bool
	// Sentinel, when set, runs the process as a sentinel monitoring that primary.
	Sentinel *Sentinel
	// Password, when set, is the server's requirepass (a sentinel's own password in
	// sentinel mode); Command authenticates with it.
	Password string
}

// ErrNil is Command's error for a nil bulk reply (GET of a missing key).
var ErrNil = errors.New("nil reply")

// TLSFiles are the PEM files of a TLS server; Client is the configuration its readiness
// probe and Command dial with (trusting the CA), required. Replication and the cluster
// bus stay plain, so TLS is for a standalone server.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
	Client                    *tls.Config
}

// Sentinel is the primary a sentinel monitors, under the master name Name; AuthPass is
// the primary's password, if it has one.
type Sentinel struct {
	Name     string
	Primary  string // host:port
	AuthPass string
}

// Server is one running (or stopped) server process.
type Server struct {
	t      testing.TB
	bin    string
	dir    string
	port   int
	bus    int // cluster bus port (cluster mode only)
	opts   Options
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Binary returns the server binary to use: valkey-server when present, else
// redis-server; "" when neither exists.
func Binary() string {
	for _, name := range []string{"valkey-server", "redis-server"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := filepath.Join("/usr/bin", name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts a server for the test and registers its stop with t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a server set up by o for the test and registers its stop with
// t.Cleanup.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "redisharness: neither valkey-server nor redis-server found on PATH"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: install one)")
		}
		t.Skip(msg)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), opts: o}
	t.Cleanup(s.Stop)
	// A port chosen free may be bound by another process (tests run in parallel)
	// before the server binds it: start again on new ones.
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			t.Fatalf("redisharness: %v", err)
		}
		// The bus's own port (cluster mode): by default it is the port + 10000, which
		// a free port above 55535 cannot have (the server refuses to start).
		s.port, s.bus = ports[0], ports[1]
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatalf("redisharness: %v", err)
		}
		t.Logf("redisharness: %v; starting again on other ports", err)
	}
}

// errPortTaken reports a server that could not have its port.
var errPortTaken = errors.New("port taken by another process")

// Addr returns the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Version returns the server's banner line, e.g. "Redis server v=7.0.15 ...".
func (s *Server) Version() string {
	out, err := exec.Command(s.bin, "--version").Output()
	if err != nil {
		return filepath.Base(s.bin)
	}
	return strings.TrimSpace(string(out))
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	args, err := s.args()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { // owned by the Server: ends when the process exits
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(startTimeout)
	for {
		if err := s.ping(); err == nil {
			return s.checkOwnLocked()
		} else if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("%s on %s did not answer PING: %w (log: %s)", s.bin, s.Addr(), err, s.logTail())
		}
		select {
		case <-exited:
			s.cmd = nil
			if log := s.logTail(); strings.Contains(log, "Address already in use") {
				return fmt.Errorf("%s on %s: %w (log: %s)", s.bin, s.Addr(), errPortTaken, log)
			}
			return fmt.Errorf("%s exited at start (log: %s)", s.bin, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// args is the server's command line for its options.
func (s *Server) args() ([]string, error) {
	port := strconv.Itoa(s.port)
	var args []string
	if st := s.opts.Sentinel; st != nil {
		// A sentinel rewrites its configuration file, so it needs one of its own.
		host, pport, err := net.SplitHostPort(st.Primary)
		if err != nil {
			return nil, fmt.Errorf("sentinel primary %q: %w", st.Primary, err)
		}
		conf := filepath.Join(s.dir, "sentinel.conf")
		// Quorum 1 and short timeouts: one sentinel decides, and a test's failover takes
		// seconds, not minutes.
		text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
			"sentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 5000\n", st.Name, host, pport)
		if st.AuthPass != "" {
			text += fmt.Sprintf("sentinel auth-pass %s %s\n", st.Name, st.AuthPass)
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("write sentinel config: %w", err)
		}
		args = append(args, conf, "--sentinel")
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	args = append(args, "--bind", "127.0.0.1", "--dir", s.dir, "--protected-mode", "yes",
		"--logfile", filepath.Join(s.dir, "server.log"))
	if f := s.opts.TLS; f != nil {
		if f.Client == nil || s.opts.Cluster || s.opts.Sentinel != nil {
			return nil, errors.New("TLS needs TLSFiles.Client, and a standalone server")
		}
		args = append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", f.CertFile,
			"--tls-key-file", f.KeyFile, "--tls-ca-cert-file", f.CAFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(s.bus), "--cluster-node-timeout", "2000")
	}
	return append(args, s.opts.Args...), nil
}

// Stop stops the server (a no-op when it is stopped) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts a stopped server again on the same port, with an empty dataset.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redisharness: restart: %v", err)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return strings.TrimSpace(string(b))
}

// ping reports whether the server answers: +PONG, or -NOAUTH from one that requires a
// password the harness was not given (set with Args).
func (s *Server) ping() error {
	reply, err := s.Command("PING")
	if err != nil && !strings.HasPrefix(err.Error(), "NOAUTH") {
		return err
	}
	if err == nil && reply != "PONG" {
		return fmt.Errorf("unexpected reply %q", reply)
	}
	return nil
}

// Command sends one command on a new connection (over TLS when the server has it) and
// returns its reply: a simple string, an integer or a bulk string as text; a nil bulk
// as ErrNil; an error reply as an error carrying its text. Arrays are not read. For
// tests' setup (CLUSTER, INFO, DBSIZE), not for the code under test.
func (s *Server) Command(args ...string) (string, error) {
	var client *tls.Config
	if s.opts.TLS != nil {
		client = s.opts.TLS.Client
	}
	return command(s.Addr(), client, s.opts.Password, args...)
}

// command sends AUTH password first when password is set, then args.
func command(addr string, client *tls.Config, password string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var c net.Conn
	var err error
	if client != nil {
		d := tls.Dialer{Config: client}
		c, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := roundTrip(c, r, "AUTH", password); err != nil {
			return "", fmt.Errorf("auth: %w", err)
		}
	}
	return roundTrip(c, r, args...)
}

// roundTrip writes one command on c and reads its reply from r.
func roundTrip(c net.Conn, r *bufio.Reader, args ...string) (string, error) {
	var req []byte
	req = fmt.Appendf(req, "*%d\r\n", len(args))
	for _, a := range args {
		req = fmt.Appendf(req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		switch {
		case err == nil && n == -1:
			return "", ErrNil
		case err != nil || n < 0:
			return "", fmt.Errorf("bulk reply %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		if string(b[n:]) != "\r\n" {
			return "", fmt.Errorf("bulk reply of %d bytes not ended by CRLF", n)
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports { // held open until all are chosen, so they differ
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// checkOwnLocked makes sure the server answering on the port is the process just
// started, not another test's server that had the port first (ours then exits).
func (s *Server) checkOwnLocked() error {
	info, err := s.Command("INFO", "server")
	if err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
		return nil // a password the harness was not given: ping accepted it the same way
	}
	if err != nil {
		return fmt.Errorf("%s on %s: INFO: %w", s.bin, s.Addr(), err)
	}
	want := "process_id:" + strconv.Itoa(s.cmd.Process.Pid) + "\r\n"
	if strings.Contains(info, want) {
		return nil
	}
	s.stopLocked()
	return fmt.Errorf("%s on %s: another server answers: %w", s.bin, s.Addr(), errPortTaken)
}

// clusterSlots is the number of hash slots in a Redis/Valkey cluster.
const clusterSlots = 16384

// StartCluster starts n cluster-mode primaries (no replicas), splits the hash slots
// evenly among them, joins them, and waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = StartWith(t, Options{Cluster: true})
	}
	for i, s := range nodes {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if _, err := s.Command("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			t.Fatalf("redisharness: cluster node %s: add slots %d-%d: %v", s.Addr(), lo, hi, err)
		}
		if i > 0 {
			if _, err := s.Command("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(nodes[0].port), strconv.Itoa(nodes[0].bus)); err != nil {
				t.Fatalf("redisharness: cluster node %s: meet: %v", s.Addr(), err)
			}
		}
	}
	deadline := time.Now().Add(startTimeout)
	for _, s := range nodes {
		for {
			info, err := s.Command("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redisharness: cluster node %s not ok after %v: %q %v", s.Addr(), startTimeout, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}
