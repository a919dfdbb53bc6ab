// Package s3test runs a real S3 server for tests: SeaweedFS's `weed server`
// with its S3 gateway, bound to 127.0.0.1 on free ports, with generated
// credentials (so request signing is really checked).
//
// The binary is found through $PBSFS_WEED (.ci/run builds it with
// scripts/build-weed and sets it). Without it the tests that need the
// server skip — unless CI=true, where they fail: CI must run them.
//
// One server serves a whole test package: declare a Server, let tests call
// Need (the first call starts it), and stop it in TestMain after m.Run.
//
// Faults: Stop and Start end and restart the server (refused connections),
// Freeze and Thaw stop and resume its processes (connections accepted,
// nothing answered). A Proxy (proxy.go) in front of it adds what the
// server itself cannot show: answers delayed by a set time, requests read
// and never answered, refused connections while the server runs, transient
// 503s; it also counts the requests another process sends.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvBinary names the variable holding the weed binary's path.
const EnvBinary = "PBSFS_WEED"

// Server is a weed server shared by a test package. The zero value is ready
// to use.
type Server struct {
	once sync.Once
	err  error
	skip string

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	bin, dir  string
	logPath   string
	ports     []int
	S3Port    int
	AccessKey string
	SecretKey string
}

// Endpoint is the server's S3 URL.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.S3Port) }

// Need returns the running server, starting it on first use. Without a
// binary it skips the test, or fails it when CI=true.
func (s *Server) Need(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() { s.err = s.setup() })
	if s.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("s3test: %s (CI=true: the S3 tests must run; .ci/run builds the server with scripts/build-weed)", s.skip)
		}
		t.Skip("s3test: " + s.skip)
	}
	if s.err != nil {
		t.Fatalf("s3test: %v", s.err)
	}
	return s
}

// Up starts the server unless it runs already, for programs that are not
// tests (the benchmark). Without a binary it says so in the error.
func (s *Server) Up() error {
	s.once.Do(func() { s.err = s.setup() })
	if s.skip != "" {
		return errors.New(s.skip)
	}
	return s.err
}

func (s *Server) setup() error {
	s.bin = os.Getenv(EnvBinary)
	if s.bin == "" {
		s.skip = "$" + EnvBinary + " is not set (scripts/build-weed prints the binary's path)"
		return nil
	}
	if _, err := os.Stat(s.bin); err != nil {
		s.skip = fmt.Sprintf("$%s: %v", EnvBinary, err)
		return nil
	}
	dir, err := os.MkdirTemp("", "pbsfs-weed-")
	if err != nil {
		return err
	}
	s.dir = dir
	s.AccessKey = "pbsfs" + randHex(6)
	s.SecretKey = randHex(20)
	conf, _ := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name":        "pbsfs",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
	}}})
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), conf, 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	s.ports, err = freePorts(8)
	if err != nil {
		return err
	}
	s.S3Port = s.ports[0]
	return s.Start()
}

// Start (re)starts the server on its ports and data directory and waits
// until the S3 gateway answers.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	p := s.ports
	s.logPath = filepath.Join(s.dir, "weed.log")
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server",
		"-dir="+filepath.Join(s.dir, "data"),
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+strconv.Itoa(p[1]), "-master.port.grpc="+strconv.Itoa(p[2]),
		"-volume.port="+strconv.Itoa(p[3]), "-volume.port.grpc="+strconv.Itoa(p[4]),
		"-filer.port="+strconv.Itoa(p[5]), "-filer.port.grpc="+strconv.Itoa(p[6]),
		"-s3", "-s3.port="+strconv.Itoa(p[0]), "-s3.port.grpc="+strconv.Itoa(p[7]),
		"-s3.config="+filepath.Join(s.dir, "s3.json"),
		// Small volumes, no grace period at stop, and none of the extra
		// services (IAM, Iceberg, Lance) that would bind fixed ports.
		"-master.volumeSizeLimitMB=64", "-volume.max=32", "-volume.preStopSeconds=0",
		"-iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, s.exited)
	if err := s.waitReady(2 * time.Minute); err != nil {
		s.stopLocked()
		return fmt.Errorf("weed server did not come up: %v\n%s", err, s.logTail())
	}
	return nil
}

// waitReady polls the S3 port until an unsigned request gets an S3 answer
// (403 for the anonymous ListBuckets), then until a bucket can be created
// (the filer and a volume must be up for that).
func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-s.exited:
			return errors.New("weed exited")
		default:
		}
		resp, err := c.Get(s.Endpoint() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 10s). Data stays for
// Start.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGCONT)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

// Freeze stops the server's processes (SIGSTOP): connections are accepted
// by the kernel but nothing answers, as with a hung endpoint. Thaw resumes.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}

// Close stops the server and removes its data. For TestMain.
func (s *Server) Close() {
	s.Stop()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// freePorts finds n distinct free TCP ports on 127.0.0.1 (held open together
// so none is handed out twice).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Ready waits until the server answers again after Thaw or Start (for
// tests that check recovery).
func (s *Server) Ready(ctx context.Context) error {
	for {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(s.Endpoint() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
