// Package testsupport holds what the tests of several packages share:
// skipping a test (or, with CI=true, failing it) when a part of the machine
// it needs is missing, size-limited tmpfs mounts for disk-full tests, and
// helper processes — the test binary run again as a second process, such as
// one holding a PBS lock — spoken to over pipes. Only tests import it.
package testsupport

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Unavailable skips the test for the reason msg, or fails it when CI=true:
// CI provides every part the tests need (.ci/run installs them), so there a
// missing part is an error, never a skipped test counted as passed.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — CI=true, so the test must not be skipped")
	}
	t.Skip(msg)
}

// RequireRoot calls Unavailable unless the test runs as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: "+why)
	}
}

// RequireFUSE calls Unavailable unless FUSE mounts can be made: /dev/fuse
// and fusermount3 are there and PBSFS_SKIP_FUSE is not set.
func RequireFUSE(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Getenv("PBSFS_SKIP_FUSE") != "" {
		missing = append(missing, "PBSFS_SKIP_FUSE is set")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse ("+err.Error()+")")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		missing = append(missing, "fusermount3 (install the fuse3 package)")
	}
	if len(missing) > 0 {
		Unavailable(t, "FUSE not available: "+strings.Join(missing, ", "))
	}
}

// RequireTools calls Unavailable unless every program named is on PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		Unavailable(t, "not installed: "+strings.Join(missing, ", "))
	}
}

// SmallFS mounts a tmpfs of the given size ("4m") on a fresh temporary
// directory and unmounts it at the end of the test (after whatever was
// mounted on top of it later, whose cleanups run first). It needs root.
func SmallFS(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t, "mount a size-limited tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// FreeBytes is what an unprivileged writer may still allocate on the file
// system holding p.
func FreeBytes(t testing.TB, p string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// FillUpTo writes a filler file into dir so that at most room bytes stay
// free, and returns its path (remove it to free the space again).
func FillUpTo(t testing.TB, dir string, room int64) string {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := FreeBytes(t, dir) - room; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	if got := FreeBytes(t, dir); got > room {
		t.Fatalf("filled %s, yet %d bytes are free (want at most %d)", dir, got, room)
	}
	return filler
}

// RandomText is n bytes of incompressible ASCII (valid UTF-8 notes).
func RandomText(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n*3/4+3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// HelperWait bounds how long a helper process may take to answer.
const HelperWait = 30 * time.Second

// Proc is a helper process: the test binary run again with extra
// arguments and environment (its TestMain recognises the environment and
// runs the helper instead of the tests), its stdout read line by line, its
// stdin open for commands. Closing stdin tells it to finish.
type Proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  bool
}

// StartHelper starts the helper; it is killed at the end of the test if it
// was not released.
func StartHelper(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	// atexit_sleep_ms: under -race the runtime otherwise sleeps 1 s at exit.
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if !p.done {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

// Line returns the helper's next line, "error: helper exited" when it
// ended without one; the test fails when none comes within HelperWait.
func (p *Proc) Line(t testing.TB) string {
	t.Helper()
	select {
	case s, ok := <-p.lines:
		if !ok {
			return "error: helper exited"
		}
		return s
	case <-time.After(HelperWait):
		t.Fatal("helper did not answer")
		return ""
	}
}

// Send writes one command line to the helper.
func (p *Proc) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// Release closes the helper's stdin and waits for it to exit; it returns
// the exit error (nil once released already).
func (p *Proc) Release() error {
	if p.done {
		return nil
	}
	p.done = true
	p.stdin.Close()
	return p.cmd.Wait()
}
