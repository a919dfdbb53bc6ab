package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopSignals are the signals that end pbsfs cleanly: Ctrl-C, kill, and the
// hangup of the terminal or ssh session pbsfs runs in.
var stopSignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM}

// TestStopSignals: SIGHUP, SIGINT and SIGTERM all make pbsfs unmount and
// exit 0, leaving nothing mounted — also while the mount is busy (it is then
// detached lazily at once and pbsfs exits when the last user lets go, or at
// once on a second signal).
func TestStopSignals(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	for _, sig := range stopSignals {
		m := startMount(t, store)
		m.stopped = true
		if err := m.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := m.waitExit(exitTimeout); code != 0 {
			t.Errorf("exit code after %v: %d, want 0\n%s", sig, code, m.stderr)
		}
		if isMounted(m.dir) {
			t.Errorf("still mounted after %v", sig)
		}
		m.checkStderr()
	}

	// Busy: a process has its working directory inside the mount. pbsfs
	// detaches the mount at once (lazy unmount) and exits 0 when the last
	// user lets go — or, on a second signal, at once.
	for _, sig := range stopSignals {
		for _, again := range []bool{false, true} {
			m := startMount(t, store)
			m.stopped = true
			busy := exec.Command("sleep", "60")
			busy.Dir = m.path("vm/100")
			if err := busy.Start(); err != nil {
				t.Fatal(err)
			}
			if err := m.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(exitTimeout)
			for isMounted(m.dir) {
				if time.Now().After(deadline) {
					t.Fatalf("busy mount not detached within %v of %v\n%s", exitTimeout, sig, m.stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-m.done:
				t.Errorf("%v: pbsfs exited while the detached mount was in use\n%s", sig, m.stderr)
			case <-time.After(200 * time.Millisecond):
			}
			if again {
				if err := m.cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			} else {
				_ = busy.Process.Kill()
			}
			if code := m.waitExit(exitTimeout); code != 0 {
				t.Errorf("exit code after %v on a busy mount (second signal: %v): %d, want 0\n%s", sig, again, code, m.stderr)
			}
			_ = busy.Process.Kill()
			_ = busy.Wait()
			if isMounted(m.dir) {
				t.Errorf("%v: still mounted", sig)
			}
			m.checkStderr()
		}
	}
}

// TestLogReaderGone: pbsfs's stderr is a pipe whose reader went away
// (`pbsfs mount ... 2>&1 | tee log`, tee killed). Writing to it fails with
// EPIPE — with SIGPIPE not ignored, the Go runtime would end pbsfs at the
// first log line, the "unmounting" line of the SIGTERM, and leave a dead
// mount. pbsfs must keep serving and, on SIGTERM, unmount and exit 0.
func TestLogReaderGone(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	m := startMountLog(t, store, w)
	w.Close()
	// Wait for the serving line, then let the reader go.
	sc := bufio.NewScanner(r)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "pbsfs: serving ") {
	}
	r.Close()
	// Log lines (-v: info) while nobody reads: an rmdir logs one.
	if err := os.Remove(m.path("vm/100/2024-06-03T02:00:05Z")); err != nil {
		t.Fatalf("rmdir after the log reader went: %v", err)
	}
	if _, err := os.ReadFile(m.path("vm/100/notes")); err != nil {
		t.Fatalf("read after the log reader went: %v", err)
	}
	m.stop()
}

// TestLogReaderStalled: pbsfs's stderr is a pipe nobody reads (a pager
// left open, a stopped tee). With --debug every request writes a log line;
// once the pipe is full (64 KiB) a blocking write would stall each request
// forever. pbsfs drops the lines instead and keeps serving, and SIGTERM
// still unmounts it.
func TestLogReaderStalled(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := startMountLog(t, store, w, "--debug")
	w.Close()
	// Far more than 64 KiB of debug lines: every request logs one.
	// (A stalled pbsfs fails the walk at the deadline; closing r at the
	// end then lets it go on.)
	ctx, cancel := context.WithTimeout(t.Context(), scaled(20*time.Second))
	defer cancel()
	for i := range 3 {
		walk := exec.CommandContext(ctx, "find", m.dir, "-name", "*.pxar", "-prune", "-o",
			"-type", "f", "(", "-name", "notes", "-o", "-name", "manifest.json", ")", "-exec", "cat", "{}", "+")
		walk.WaitDelay = time.Second // cat may hang on in a stalled request
		out, err := walk.CombinedOutput()
		if err != nil {
			t.Fatalf("walk %d while nobody reads pbsfs's log: %v: %.200s", i, err, out)
		}
	}
	m.stop()
}

// TestExternalUnmount: `fusermount3 -u MOUNTPOINT` ends pbsfs with exit 0.
func TestExternalUnmount(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	m.stopped = true
	if out, err := exec.Command("fusermount3", "-u", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	if code := m.waitExit(exitTimeout); code != 0 {
		t.Errorf("exit code after fusermount3 -u: %d, want 0\n%s", code, m.stderr)
	}
	if isMounted(m.dir) {
		t.Error("still mounted")
	}
	m.checkStderr()
}

// TestPreMountRefusals: pbsfs refuses bad datastores and mountpoints before
// mounting, with the named exit codes of the CLI contract.
func TestPreMountRefusals(t *testing.T) {
	t.Parallel()
	if buildErr != nil {
		t.Fatalf("building pbsfs failed: %v", buildErr)
	}
	store := newStore(t)
	tmp := t.TempDir()
	mk := func(parts ...string) string {
		p := filepath.Join(append([]string{tmp}, parts...)...)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emptyMnt := mk("mnt")
	notEmpty := mk("full")
	if err := os.WriteFile(filepath.Join(notEmpty, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noChunks := mk("nochunks")
	inside := filepath.Join(store, "mnt")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	insideNS := filepath.Join(store, "ns", "prod", "empty")
	if err := os.Mkdir(insideNS, 0o755); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(tmp, "afile")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		exitUsage      = 2
		exitDatastore  = 10
		exitMountPoint = 11
	)
	base := []string{"mount", "--lock-scheme", "run", "--lock-dir", filepath.Join(tmp, "locks"), "--store", storeName}
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"mountpoint not empty", []string{store, notEmpty}, exitMountPoint},
		{"mountpoint inside the store", []string{store, inside}, exitMountPoint},
		{"mountpoint deep inside the store", []string{store, insideNS}, exitMountPoint},
		{"mountpoint missing", []string{store, filepath.Join(tmp, "missing")}, exitMountPoint},
		{"mountpoint is a file", []string{store, aFile}, exitMountPoint},
		{"datastore without .chunks", []string{noChunks, emptyMnt}, exitDatastore},
		{"datastore missing", []string{filepath.Join(tmp, "nostore"), emptyMnt}, exitDatastore},
		{"datastore is a file", []string{aFile, emptyMnt}, exitDatastore},
		{"missing mountpoint argument", []string{store}, exitUsage},
		{"too many arguments", []string{store, emptyMnt, "extra"}, exitUsage},
		{"unknown flag", []string{"--no-such-flag", store, emptyMnt}, exitUsage},
		{"bad lock scheme", []string{"--lock-scheme", "bogus", store, emptyMnt}, exitUsage},
	}
	before := treeDigest(t, store)
	for _, c := range cases {
		code, out := runPbsfs(t, append(append([]string{}, base...), c.args...)...)
		if code != c.code {
			t.Errorf("%s: exit code %d, want %d\n%s", c.name, code, c.code, out)
		}
		if out == "" {
			t.Errorf("%s: no message", c.name)
		}
		for _, d := range []string{emptyMnt, notEmpty, inside, insideNS} {
			if isMounted(d) {
				t.Errorf("%s: %s got mounted", c.name, d)
				_ = exec.Command("fusermount3", "-u", "-z", d).Run()
			}
		}
	}
	if code, out := runPbsfs(t, "no-such-command"); code != exitUsage {
		t.Errorf("unknown command: exit %d, want %d\n%s", code, exitUsage, out)
	}
	// The refusals touched nothing (the two empty directories made above
	// for the inside cases excepted, which exist in both digests).
	diffDigests(t, before, treeDigest(t, store))
}
