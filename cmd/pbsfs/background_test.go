package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestBackgroundInterrupted: a signal to the waiting parent of the mount(8)
// form (Ctrl-C, mount(8)'s caller giving up) while the background child is
// still starting ends the child too, and nothing is mounted. The child is
// held before readiness by a log-file that is a FIFO nobody reads.
func TestBackgroundInterrupted(t *testing.T) {
	needFUSE(t)
	store, mnt, locks := newStore(t)
	fifo := filepath.Join(t.TempDir(), "log.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPBSFS(t, store, mnt, "-o", "lock-scheme=run,lock-dir="+locks+",store=demo,log-file="+fifo)
	var child int
	waitFor(t, "the background child", func() bool {
		child = childOf(p.cmd.Process.Pid)
		return child != 0
	})
	t.Cleanup(func() { // if it outlived the test: only that process, not a reused pid
		if cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "cmdline")); strings.Contains(string(cmdline), fifo) {
			syscall.Kill(child, syscall.SIGKILL)
		}
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != ExitOther || !strings.Contains(p.stderr.String(), "terminated received before the mount was ready") {
		t.Errorf("exit %d, stderr %q", code, p.stderr.String())
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(child))); err == nil {
		t.Error("the background child outlived its parent")
	}
	if isMounted(t, mnt) {
		t.Error("mounted")
	}
}

// childOf returns the pid of a child process of pid, or 0. Each thread
// lists the children it started.
func childOf(pid int) int {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, task := range tasks {
		data, _ := os.ReadFile(task)
		if f := strings.Fields(string(data)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	return 0
}
