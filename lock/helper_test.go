package lock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/internal/testsupport"
)

// The tests re-execute the test binary as a helper process that takes one
// lock, so that lock conflicts are checked between real processes (as with a
// PBS daemon), not only between descriptors of one process.

const helperEnv = "PBSFS_LOCK_TEST_HELPER"

// helperArgs tells the helper what to lock.
//
// Kinds: "group", "snap-shared", "snap-excl", "manifest" (through a Locker
// built from Cfg and P); "raw-file-ex", "raw-file-sh", "raw-dir-ex",
// "raw-dir-sh" (plain open+flock of Raw, the way PBS does it, without this
// package); "none" (no lock; only serves commands).
//
// Commands read from stdin, one a line, each answered with "ok" or "error:":
// "unlink" removes Raw (or the held lock's path); "replace" removes it and
// creates a new empty file in its place. EOF releases the lock and exits.
type helperArgs struct {
	Cfg     Config
	P       Path
	Kind    string
	Raw     string
	Timeout time.Duration // manifest lock timeout; 0 = ManifestTimeout
}

func TestMain(m *testing.M) {
	if a := os.Getenv(helperEnv); a != "" {
		os.Exit(runHelper(a))
	}
	os.Exit(m.Run())
}

func runHelper(arg string) int {
	var a helperArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		fmt.Printf("error: %v\n", err)
		return 2
	}
	held, path, err := helperLock(a)
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return 1
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var err error
		switch sc.Text() {
		case "unlink":
			err = os.Remove(path)
		case "replace":
			if err = os.Remove(path); err == nil {
				var f *os.File
				if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o660); err == nil {
					err = f.Close()
				}
			}
		default:
			err = fmt.Errorf("unknown command %q", sc.Text())
		}
		if err != nil {
			fmt.Printf("error: %v\n", err)
		} else {
			fmt.Println("ok")
		}
	}
	if held != nil {
		held()
	}
	return 0
}

// helperLock takes the lock and returns its release function and path.
func helperLock(a helperArgs) (func(), string, error) {
	raw := func(flags, how int) (func(), string, error) {
		fd, err := unix.Open(a.Raw, flags|unix.O_CLOEXEC, 0o660)
		if err != nil {
			return nil, "", err
		}
		if err := unix.Flock(fd, how|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			return nil, "", err
		}
		return func() { unix.Close(fd) }, a.Raw, nil
	}
	switch a.Kind {
	case "none":
		return nil, a.Raw, nil
	case "raw-file-ex":
		return raw(unix.O_RDWR|unix.O_CREAT, unix.LOCK_EX)
	case "raw-file-sh":
		return raw(unix.O_RDWR|unix.O_CREAT, unix.LOCK_SH)
	case "raw-dir-ex":
		return raw(unix.O_RDONLY|unix.O_DIRECTORY, unix.LOCK_EX)
	case "raw-dir-sh":
		return raw(unix.O_RDONLY|unix.O_DIRECTORY, unix.LOCK_SH)
	}
	l, err := New(a.Cfg)
	if err != nil {
		return nil, "", err
	}
	var lk *Lock
	switch a.Kind {
	case "group":
		lk, err = l.LockGroup(a.P)
	case "snap-shared":
		lk, err = l.LockSnapshot(a.P, true)
	case "snap-excl":
		lk, err = l.LockSnapshot(a.P, false)
	case "manifest":
		timeout := a.Timeout
		if timeout == 0 {
			timeout = ManifestTimeout
		}
		lk, err = l.LockManifest(context.Background(), a.P, timeout)
	default:
		err = fmt.Errorf("unknown kind %q", a.Kind)
	}
	if err != nil {
		return nil, "", err
	}
	return func() { _ = lk.Unlock() }, lk.Path(), nil
}

// helper is a running helper process.
type helper struct{ *testsupport.Proc }

// spawn starts a helper and returns it with its first line ("ready" or
// "error: ...").
func spawn(t *testing.T, a helperArgs) (*helper, string) {
	t.Helper()
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{testsupport.StartHelper(t, []string{helperEnv + "=" + string(js)})}
	return h, h.Line(t)
}

// hold starts a helper that must get its lock.
func hold(t *testing.T, a helperArgs) *helper {
	t.Helper()
	h, first := spawn(t, a)
	if first != "ready" {
		t.Fatalf("helper %s: %s", a.Kind, first)
	}
	return h
}

// tryHold starts a helper expected to fail taking its lock and returns its
// error line.
func tryHold(t *testing.T, a helperArgs) string {
	t.Helper()
	h, first := spawn(t, a)
	h.release(t)
	if first == "ready" {
		t.Fatalf("helper %s unexpectedly got the lock", a.Kind)
	}
	return first
}

// do sends a command and waits for "ok".
func (h *helper) do(t *testing.T, cmd string) {
	t.Helper()
	h.Send(t, cmd)
	if s := h.Line(t); s != "ok" {
		t.Fatalf("helper %s: %s", cmd, s)
	}
}

// release closes stdin, which makes the helper drop its lock and exit, and
// waits for it (an exit status is no error: a helper that could not lock
// exits with one).
func (h *helper) release(t *testing.T) {
	t.Helper()
	if err := h.Release(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("helper: %v", err)
		}
	}
}

// wantWouldBlock asserts err is ErrWouldBlock and names the lock path.
func wantWouldBlock(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("want ErrWouldBlock, got %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
		t.Errorf("error %q does not name %q", err, path)
	}
}
