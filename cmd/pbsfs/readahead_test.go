package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBdiReadAheadPath(t *testing.T) {
	for _, c := range []struct {
		sysfs string
		dev   uint64
		want  string
	}{
		{"/sys", unix.Mkdev(0, 39), "/sys/class/bdi/0:39/read_ahead_kb"},
		{"/sys/", unix.Mkdev(0, 1234), "/sys/class/bdi/0:1234/read_ahead_kb"},
		{"/tmp/sys", unix.Mkdev(8, 0), "/tmp/sys/class/bdi/8:0/read_ahead_kb"},
	} {
		if got := bdiReadAheadPath(c.sysfs, c.dev); got != c.want {
			t.Errorf("bdiReadAheadPath(%q, %d) = %q, want %q", c.sysfs, c.dev, got, c.want)
		}
	}
}

// The mount's kernel read-ahead is raised to --read-ahead where sysfs lets
// pbsfs write it (as root, the way pbsfs runs on a PBS host), the mount
// works with the kernel's read-ahead where it does not (not root, or a
// read-only /sys), and --read-ahead 0 leaves the kernel's.
func TestMountReadAhead(t *testing.T) {
	needFUSE(t)
	writable := false
	readAhead := func(args ...string) int {
		store, mnt, locks := newStore(t)
		args = append([]string{"mount", "--read-only", "--lock-scheme", "run", "--lock-dir", locks, "--store", "demo"}, args...)
		p := startPBSFS(t, append(args, store, mnt)...)
		p.waitServing()
		defer func() {
			p.cmd.Process.Signal(os.Interrupt)
			p.wait()
		}()
		var st unix.Stat_t
		if err := unix.Stat(mnt, &st); err != nil {
			t.Fatal(err)
		}
		// Set before the serving line.
		path := bdiReadAheadPath("/sys", st.Dev)
		writable = unix.Access(path, unix.W_OK) == nil
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the mount's read-ahead: %v", err)
		}
		kib, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return kib
	}
	kernel := readAhead("--read-ahead", "0")
	if kernel == 2048 {
		t.Fatalf("the kernel's default is already 2048 KiB: the test cannot tell")
	}
	got := readAhead("--read-ahead", "2048")
	if !writable {
		t.Logf("%s cannot be written here (uid %d): the kernel's read-ahead must stay", "read_ahead_kb", os.Geteuid())
		if got != kernel {
			t.Errorf("read-ahead %d KiB, want the kernel's %d", got, kernel)
		}
		return
	}
	if got != 2048 {
		t.Errorf("--read-ahead 2048: the mount's read-ahead is %d KiB (kernel default %d)", got, kernel)
	}
	if def := readAhead(); def != DefaultReadAheadKiB {
		t.Errorf("default: the mount's read-ahead is %d KiB, want %d", def, DefaultReadAheadKiB)
	}
}
