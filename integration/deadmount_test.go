package integration

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// envOtherFS makes the test binary, re-executed, serve a FUSE file system
// that is not pbsfs (fsname otherfs-src, subtype otherfs) on the mountpoint
// it names, until killed. It is handled in init, before TestMain.
const envOtherFS = "PBSFS_IT_OTHERFS"

func init() {
	if mnt := os.Getenv(envOtherFS); mnt != "" {
		os.Exit(otherFSMain(mnt))
	}
}

// otherFS is an empty directory.
type otherFS struct{}

func (otherFS) Root() (fusefs.Node, error) { return otherFS{}, nil }
func (otherFS) Attr(ctx context.Context, a *fuse.Attr) error {
	a.Inode, a.Mode = 1, os.ModeDir|0o755
	return nil
}
func (otherFS) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) { return nil, nil }

func otherFSMain(mnt string) int {
	c, err := fuse.Mount(mnt, fuse.FSName("otherfs-src"), fuse.Subtype("otherfs"))
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		return 1
	}
	os.Stdout.WriteString("serving\n")
	if err := fusefs.Serve(c, otherFS{}); err != nil {
		return 1
	}
	return 0
}

// statErrno is the errno of stat(path), 0 for success.
func statErrno(path string) syscall.Errno {
	var st syscall.Stat_t
	err := syscall.Stat(path, &st)
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// mountsAt counts the mounts on path in this process's mount table.
func mountsAt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}

// TestDeadMountAtStart: a mountpoint left as a dead FUSE mount ("transport
// endpoint is not connected"). pbsfs's own dead mount (pbsfs killed with
// SIGKILL, a shell still sitting in it) is unmounted, with a message, and
// the new mount takes its place; another file system's dead mount is left
// alone, and pbsfs refuses (exit 11) with the command that unmounts it.
func TestDeadMountAtStart(t *testing.T) {
	t.Parallel()
	store := newStore(t)

	t.Run("pbsfs killed", func(t *testing.T) {
		m := startMount(t, store)
		busy := exec.Command("sleep", "60")
		busy.Dir = m.path("vm/100")
		if err := busy.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = busy.Process.Kill(); _ = busy.Wait() }()
		// Looked at first, as a user's ls does: the kernel then keeps the
		// root's attributes (long TTLs) and answers a stat of the dead
		// mount from them; only the open or readdir gives ENOTCONN.
		if _, err := os.Stat(m.dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.ReadDir(m.dir); err != nil {
			t.Fatal(err)
		}
		m.stopped = true
		if err := m.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		m.waitExit(exitTimeout)
		if _, err := os.ReadDir(m.dir); !errors.Is(err, syscall.ENOTCONN) {
			t.Fatalf("listing the killed mount: %v, want ENOTCONN", err)
		}
		m2 := startMountIn(t, store, m.dir, nil)
		if !strings.Contains(m2.stderr.String(), m.dir+" was a dead pbsfs mount") {
			t.Errorf("no message about the dead mount:\n%s", m2.stderr)
		}
		if n := mountsAt(t, m.dir); n != 1 {
			t.Errorf("%d mounts on %s, want 1 (the dead one gone)", n, m.dir)
		}
		if _, err := os.ReadFile(m2.path("vm/100/notes")); err != nil {
			t.Errorf("read through the new mount: %v", err)
		}
		m2.stop()
	})

	t.Run("another file system", func(t *testing.T) {
		requireFUSE(t)
		dir := filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		other := exec.Command(os.Args[0], "-test.run=^$")
		other.Env = append(os.Environ(), envOtherFS+"="+dir)
		other.Stderr = os.Stderr
		out, err := other.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = other.Process.Kill()
			_ = other.Wait()
			_ = exec.Command("fusermount3", "-u", "-z", dir).Run()
		})
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "serving\n" {
			t.Fatalf("other file system: %q", line)
		}
		if _, err := os.ReadDir(dir); err != nil { // served: the mount is complete
			t.Fatal(err)
		}
		_ = other.Process.Kill()
		_ = other.Wait()
		if e := statErrno(dir); e != syscall.ENOTCONN {
			t.Fatalf("stat of the killed file system: errno %v, want ENOTCONN", e)
		}
		code, msg := runPbsfs(t, "mount", "--lock-scheme", "run", "--lock-dir", filepath.Join(t.TempDir(), "locks"), "--store", storeName, store, dir)
		if code != 11 {
			t.Errorf("exit code %d, want 11\n%s", code, msg)
		}
		for _, want := range []string{"fuse.otherfs", "not pbsfs's", "unmount it with: fusermount3 -u " + dir + "\n"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
		if e := statErrno(dir); e != syscall.ENOTCONN || mountsAt(t, dir) != 1 {
			t.Errorf("the other file system's dead mount was touched: stat errno %v, %d mounts", e, mountsAt(t, dir))
		}
	})
}
