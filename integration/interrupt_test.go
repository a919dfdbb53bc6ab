package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/lock"
)

// envBlockedOp makes the test binary, re-executed, do one file operation
// that blocks in pbsfs (see blockedOpMain). It is handled in init, before
// TestMain.
const envBlockedOp = "PBSFS_IT_BLOCKEDOP" // "save|PATH", "append|PATH" or "rmdir|PATH"

func init() {
	if arg := os.Getenv(envBlockedOp); arg != "" {
		os.Exit(blockedOpMain(arg))
	}
}

// blockedOpMain saves notes (open O_TRUNC, write, close) or removes a
// directory on the thread it prints ("tid N"), with SIGINT handled (so that
// the interrupted system call returns instead of the process dying), and
// prints the result: "errno N" (0 for success).
func blockedOpMain(arg string) int {
	op, path, _ := strings.Cut(arg, "|")
	runtime.LockOSThread()
	// Handled, as a shell or any Go program handles them: each makes the
	// kernel send pbsfs an INTERRUPT for the blocked call.
	signal.Notify(make(chan os.Signal, 4), syscall.SIGINT, syscall.SIGCHLD, syscall.SIGWINCH)
	fmt.Printf("tid %d\n", unix.Gettid())
	var err error
	switch op {
	case "save":
		var fd int
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
		if err == nil {
			if _, err = unix.Write(fd, []byte("interrupted save\n")); err == nil {
				err = unix.Close(fd) // the FLUSH that commits; blocks on the manifest lock
			}
		}
	case "append":
		var fd int
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
		if err == nil {
			if _, err = unix.Write(fd, []byte("interrupted append\n")); err == nil {
				err = unix.Close(fd)
			}
		}
	case "rmdir":
		err = unix.Rmdir(path)
	default:
		err = unix.EINVAL
	}
	var e unix.Errno
	if err != nil && !errors.As(err, &e) {
		e = unix.EIO
	}
	fmt.Printf("errno %d\n", int(e))
	return 0
}

// waitInSyscall waits until thread tid of pid is blocked in system call nr
// (the first field of /proc/PID/task/TID/syscall while it sleeps there).
func waitInSyscall(t *testing.T, pid, tid int, nr uintptr) {
	t.Helper()
	file := fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid)
	deadline := time.Now().Add(scaled(4 * time.Second))
	for {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.Itoa(int(nr)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d not blocked in syscall %d: %s shows %q", tid, nr, file, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// interruptBlocked starts blockedOpMain for op on path, waits until its
// thread is blocked in system call nr, sends that thread SIGINT (what a
// terminal's Ctrl-C does to a single-threaded program) and returns the
// errno the call ended with.
func interruptBlocked(t *testing.T, op, path string, nr uintptr) syscall.Errno {
	t.Helper()
	return signalBlocked(t, op, path, nr, unix.SIGINT, nil)
}

// signalBlocked is interruptBlocked with signal sig, and then (if not nil)
// run after the signal was sent, while the call may still be blocked.
func signalBlocked(t *testing.T, op, path string, nr uintptr, sig unix.Signal, then func()) syscall.Errno {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBlockedOp+"="+op+"|"+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	line, _ := r.ReadString('\n')
	tid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "tid "))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	waitInSyscall(t, cmd.Process.Pid, tid, nr)
	// Let pbsfs take the request up first: bazil drops an INTERRUPT that
	// overtakes the request it names (it answers it instead of asking the
	// kernel to send it again), and the wait would then run to its timeout.
	time.Sleep(scaled(300 * time.Millisecond))
	if err := unix.Tgkill(cmd.Process.Pid, tid, sig); err != nil {
		t.Fatal(err)
	}
	if then != nil {
		then()
	}
	line, _ = r.ReadString('\n')
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "errno "))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	return syscall.Errno(n)
}

// TestInterruptLockWait: Ctrl-C ends a notes save or an rmdir that waits
// for a manifest lock PBS holds — with EINTR, before the 5 s lock timeout
// (which would give EAGAIN), nothing written, and no lock kept: once PBS
// lets go, the next save goes through at once.
func TestInterruptLockWait(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)

	t.Run("save", func(t *testing.T) {
		snap := "ct/200/2024-06-01T01:30:00Z"
		sn := snapshotOf(t, snap)
		blob := filepath.Join(store, snap, "index.json.blob")
		before, _ := os.ReadFile(blob)
		h := m.holdLock("manifest", sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
		got := interruptBlocked(t, "save", m.path(snap, "notes"), unix.SYS_CLOSE)
		if got != syscall.EINTR {
			t.Errorf("close of a save interrupted while waiting for the manifest lock: errno %d (%v), want EINTR", got, got)
		}
		h.release()
		time.Sleep(scaled(500 * time.Millisecond)) // a commit left behind would come now
		if after, _ := os.ReadFile(blob); !bytes.Equal(before, after) {
			t.Errorf("the interrupted save changed the manifest")
		}
		// No lock is left held: PBS gets it at once, and so does a save.
		l := m.locker()
		lk, err := l.LockManifest(t.Context(), lock.Path{NS: sn.Group.NS, Rel: sn.Group.Type + "/" + sn.Group.ID + "/" + sn.Time}, 0)
		if err != nil {
			t.Fatalf("manifest lock after the interrupted save: %v", err)
		}
		_ = lk.Unlock()
		if err := os.WriteFile(m.path(snap, "notes"), []byte("after\n"), 0o644); err != nil {
			t.Errorf("save after the interrupted one: %v", err)
		}
		if mm, _ := loadManifest(t, store, snap); mm.Notes() != "after\n" {
			t.Errorf("notes on disk %q, want %q", mm.Notes(), "after\n")
		}
	})

	// An append refused at close leaves the kernel with the size its write
	// gave the file; a reader must still get exactly the stored text, not
	// the kernel's cached pages cut or padded with NULs to that size.
	t.Run("append, then read", func(t *testing.T) {
		snap := "ct/200/2024-06-02T01:30:00Z"
		sn := snapshotOf(t, snap)
		mm, _ := loadManifest(t, store, snap)
		for range 2 { // the second open keeps the kernel's pages
			if b, err := os.ReadFile(m.path(snap, "notes")); err != nil || string(b) != mm.Notes() {
				t.Fatalf("notes before: %q, %v", b, err)
			}
		}
		h := m.holdLock("manifest", sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
		if got := interruptBlocked(t, "append", m.path(snap, "notes"), unix.SYS_CLOSE); got != syscall.EINTR {
			t.Errorf("interrupted append: errno %v, want EINTR", got)
		}
		h.release()
		if b, err := os.ReadFile(m.path(snap, "notes")); err != nil || string(b) != mm.Notes() {
			t.Errorf("notes read after the refused append: %q, %v; want the stored %q", b, err, mm.Notes())
		}
	})

	t.Run("rmdir", func(t *testing.T) {
		snap := "ct/200/2024-06-02T01:30:00Z"
		sn := snapshotOf(t, snap)
		before := treeDigest(t, store)
		h := m.holdLock("manifest", sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
		got := interruptBlocked(t, "rmdir", m.path(snap), unix.SYS_UNLINKAT)
		if got != syscall.EINTR {
			t.Errorf("rmdir interrupted while waiting for the manifest lock: errno %d (%v), want EINTR", got, got)
		}
		h.release()
		diffDigests(t, before, treeDigest(t, store))
	})

	// Any other signal the program catches makes the kernel interrupt the
	// request too (a child's SIGCHLD, a resized terminal's SIGWINCH, the Go
	// runtime's SIGURG): the save waits on and goes through once the lock
	// is free, as a close on a local disk would not fail either.
	for _, sig := range []unix.Signal{unix.SIGCHLD, unix.SIGWINCH} {
		t.Run("save after "+unix.SignalName(sig), func(t *testing.T) {
			snap := "vm/100/2024-06-01T02:00:04Z"
			sn := snapshotOf(t, snap)
			h := m.holdLock("manifest", sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
			got := signalBlocked(t, "save", m.path(snap, "notes"), unix.SYS_CLOSE, sig, func() {
				time.Sleep(scaled(300 * time.Millisecond)) // an EINTR would come now
				h.release()
			})
			if got != 0 {
				t.Errorf("close of a save that got %v while waiting for the manifest lock: errno %d (%v), want success", sig, got, got)
			}
			if mm, _ := loadManifest(t, store, snap); mm.Notes() != "interrupted save\n" {
				t.Errorf("notes on disk %q, want %q", mm.Notes(), "interrupted save\n")
			}
		})
	}

	if s := m.stderr.String(); !strings.Contains(s, "interrupted; nothing written") {
		t.Errorf("no log line for the interrupted requests:\n%s", s)
	}
}
