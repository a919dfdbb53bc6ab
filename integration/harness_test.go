package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	pbsfs "pbsfs/fs"
	"pbsfs/internal/testsupport"
	"pbsfs/lock"
)

// storeName is the datastore name every test mounts with (--store).
const storeName = "test"

// fuseSuperMagic is f_type of a FUSE mount in statfs(2).
const fuseSuperMagic = 0x65735546

// Deadlines. Race-enabled binaries start slower.
var (
	mountTimeout = scaled(15 * time.Second)
	exitTimeout  = scaled(15 * time.Second)
)

// changeVisible is how long a change PBS makes may take to show through the
// mount: the revalidator looks every fs.DefaultRecheck, and a pass over a
// test store takes no time to speak of; three intervals, scaled for -race.
func changeVisible() time.Duration { return scaled(3 * pbsfs.DefaultRecheck) }

func scaled(d time.Duration) time.Duration {
	if raceEnabled {
		return 3 * d
	}
	return d
}

// requireFUSE skips the test when FUSE is not usable here, or fails it when
// CI=true (a CI machine must run the mount tests). It also fails when the
// pbsfs binary could not be built.
func requireFUSE(t *testing.T) {
	t.Helper()
	testsupport.RequireFUSE(t)
	if buildErr != nil {
		t.Fatalf("building pbsfs failed: %v", buildErr)
	}
}

// syncBuffer collects a subprocess's stderr safely.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mount is one running `pbsfs mount`.
type mount struct {
	t       *testing.T
	store   string // datastore directory
	dir     string // mountpoint
	lockDir string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done
	stopped bool
}

// newStore writes the demo sample store into a fresh temporary directory.
func newStore(t *testing.T) string {
	t.Helper()
	store := filepath.Join(t.TempDir(), "store")
	if _, err := demo.Sample(store); err != nil {
		t.Fatalf("demo.Sample: %v", err)
	}
	return store
}

// startMount mounts store (read-write unless extra says --read-only) and
// waits until the mountpoint shows it. The mount is stopped with SIGTERM at
// the end of the test (and must then exit 0).
func startMount(t *testing.T, store string, extra ...string) *mount {
	t.Helper()
	return startMountLog(t, store, nil, extra...)
}

// startMountLog is startMount with pbsfs's stdout and stderr going to
// logOut instead of m.stderr (which then stays empty), when logOut is not
// nil.
func startMountLog(t *testing.T, store string, logOut *os.File, extra ...string) *mount {
	t.Helper()
	return startMountIn(t, store, "", logOut, extra...)
}

// startMountIn is startMountLog on the existing mountpoint dir; "" makes a
// fresh one.
func startMountIn(t *testing.T, store, dir string, logOut *os.File, extra ...string) *mount {
	t.Helper()
	requireFUSE(t)
	m := &mount{
		t:       t,
		store:   store,
		dir:     dir,
		lockDir: filepath.Join(t.TempDir(), "locks"),
		stderr:  &syncBuffer{},
		done:    make(chan struct{}),
	}
	if dir == "" {
		m.dir = filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(m.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"mount", "--lock-scheme", "run", "--lock-dir", m.lockDir, "--store", storeName, "-v"}
	args = append(args, extra...)
	args = append(args, store, m.dir)
	cmd := exec.Command(pbsfsBin, args...)
	if logOut != nil {
		cmd.Stderr, cmd.Stdout = logOut, logOut
	}
	m.run(cmd)
	return m
}

// run starts cmd, a pbsfs mount of m (its output goes to m.stderr unless
// cmd has its own), and waits until the mount serves; the test's cleanup
// unmounts it.
func (m *mount) run(cmd *exec.Cmd) {
	m.t.Helper()
	m.cmd = cmd
	if cmd.Stderr == nil {
		cmd.Stderr, cmd.Stdout = m.stderr, m.stderr
	}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start pbsfs: %v", err)
	}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.done)
	}()
	m.t.Cleanup(m.cleanup)
	m.waitReady()
}

// isMounted reports whether dir is (still) a FUSE mount.
func isMounted(dir string) bool {
	var st syscall.Statfs_t
	err := syscall.Statfs(dir, &st)
	if errors.Is(err, syscall.ENOTCONN) {
		return true // a dead FUSE mount
	}
	return err == nil && st.Type == fuseSuperMagic
}

// waitReady polls until the mountpoint is a FUSE mount listing the store's
// top level, or fails the test at the deadline or when pbsfs exits.
func (m *mount) waitReady() {
	m.t.Helper()
	want := expectedNames(m.t, m.store, "")
	deadline := time.Now().Add(mountTimeout)
	for {
		select {
		case <-m.done:
			m.t.Fatalf("pbsfs exited before the mount was ready: %v\nstderr:\n%s", m.waitErr, m.stderr)
		default:
		}
		if isMounted(m.dir) {
			if names, err := readNames(m.dir); err == nil && equalStrings(names, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mount not ready after %v\nstderr:\n%s", mountTimeout, m.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// path joins mount-relative path elements under the mountpoint.
func (m *mount) path(rel ...string) string {
	return filepath.Join(append([]string{m.dir}, rel...)...)
}

// storePath joins store-relative path elements under the datastore.
func (m *mount) storePath(rel ...string) string {
	return filepath.Join(append([]string{m.store}, rel...)...)
}

// waitExit waits for pbsfs to exit and returns its exit code (-1 if it was
// killed by a signal), failing the test on timeout.
func (m *mount) waitExit(timeout time.Duration) int {
	m.t.Helper()
	select {
	case <-m.done:
	case <-time.After(timeout):
		m.t.Fatalf("pbsfs did not exit within %v\nstderr:\n%s", timeout, m.stderr)
	}
	return m.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and checks that pbsfs exits 0 and the mount is gone.
func (m *mount) stop() {
	m.t.Helper()
	m.stopped = true
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.t.Errorf("SIGTERM: %v", err)
	}
	if code := m.waitExit(exitTimeout); code != 0 {
		m.t.Errorf("pbsfs exited with %d after SIGTERM, want 0\nstderr:\n%s", code, m.stderr)
	}
	if isMounted(m.dir) {
		m.t.Errorf("still mounted after pbsfs exited")
	}
	m.checkStderr()
}

// checkStderr fails the test on data races or panics reported by pbsfs.
func (m *mount) checkStderr() {
	m.t.Helper()
	s := m.stderr.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(s, bad) {
			m.t.Errorf("pbsfs reported %q:\n%s", bad, s)
		}
	}
}

// cleanup stops pbsfs if the test did not, and makes sure nothing stays
// mounted: SIGTERM, wait, then SIGKILL and fusermount3 -u -z.
func (m *mount) cleanup() {
	if !m.stopped {
		m.stopped = true
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
			if code := m.cmd.ProcessState.ExitCode(); code != 0 && !m.t.Failed() {
				m.t.Errorf("pbsfs exited with %d after SIGTERM, want 0\nstderr:\n%s", code, m.stderr)
			}
		case <-time.After(exitTimeout):
			m.t.Errorf("pbsfs did not exit within %v of SIGTERM; killing it\nstderr:\n%s", exitTimeout, m.stderr)
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		m.checkStderr()
	}
	if isMounted(m.dir) {
		out, err := exec.Command("fusermount3", "-u", "-z", m.dir).CombinedOutput()
		if err != nil {
			m.t.Logf("fusermount3 -u -z %s: %v: %s", m.dir, err, out)
		}
	}
	if m.t.Failed() {
		m.t.Logf("pbsfs stderr:\n%s", m.stderr)
	}
}

// run runs the pbsfs binary to completion (for commands that should refuse
// to mount) and returns its exit code and combined output.
func runPbsfs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building pbsfs failed: %v", buildErr)
	}
	cmd := exec.Command(pbsfsBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(exitTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("pbsfs %q did not exit within %v\n%s", args, exitTimeout, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// sh runs a shell command in dir and returns its combined output.
func sh(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustSh runs a shell command that has to succeed.
func mustSh(t *testing.T, dir, script string) {
	t.Helper()
	if out, err := sh(t, dir, script); err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
}

// heldLock is a PBS lock held by a helper process.
type heldLock struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
}

// holdLock starts a helper process (this test binary re-executed) that takes
// a PBS lock with the same configuration as the mount and holds it until
// release or the end of the test. kind is "snapshot" (exclusive, like a
// backup writer), "shared-snapshot" (like a reader or verify), "group" or
// "manifest" (like PBS's update_manifest).
func (m *mount) holdLock(kind string, ns []string, rel string) *heldLock {
	m.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envHelper+"=holdlock",
		envLockCfg+"="+strings.Join([]string{string(lock.Run), m.lockDir, storeName, m.store}, "|"),
		envLockObj+"="+strings.Join([]string{kind, strings.Join(ns, ":"), rel}, "|"),
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	h := &heldLock{cmd: cmd, stdin: stdin}
	m.t.Cleanup(h.release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		m.t.Fatalf("lock helper: %q, %v", line, err)
	}
	return h
}

// release lets the helper unlock and waits for it to exit. Safe to call
// more than once and from several goroutines.
func (h *heldLock) release() {
	h.once.Do(func() {
		h.stdin.Close()
		_ = h.cmd.Wait()
	})
}

// locker returns a lock.Locker configured like the mount, for computing
// lock file paths.
func (m *mount) locker() *lock.Locker {
	m.t.Helper()
	l, err := lock.New(lock.Config{Scheme: lock.Run, Dir: m.lockDir, Store: storeName, Base: m.store, UID: -1, GID: -1})
	if err != nil {
		m.t.Fatal(err)
	}
	return l
}

// snapshotOf parses a datastore-relative snapshot directory.
func snapshotOf(t *testing.T, rel string) datastore.Snapshot {
	t.Helper()
	parts := strings.Split(filepath.ToSlash(rel), "/")
	var ns datastore.NS
	for len(parts) > 3 && parts[0] == "ns" {
		ns = append(ns, parts[1])
		parts = parts[2:]
	}
	if len(parts) != 3 {
		t.Fatalf("not a snapshot path: %q", rel)
	}
	return datastore.Snapshot{Group: datastore.Group{NS: ns, Type: parts[0], ID: parts[1]}, Time: parts[2]}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// errnoOf extracts the errno from an os error ("" description if none).
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// wantErrno fails unless err carries one of the given errnos.
func wantErrno(t *testing.T, what string, err error, want ...syscall.Errno) {
	t.Helper()
	got := errnoOf(err)
	for _, w := range want {
		if got == w && got != 0 {
			return
		}
	}
	t.Errorf("%s: error %v (errno %d), want %s", what, err, got, fmtErrnos(want))
}

func fmtErrnos(es []syscall.Errno) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = fmt.Sprintf("%v", e)
	}
	return strings.Join(s, "/")
}
