package main

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
	"pbsfs/internal/testsupport"
	"pbsfs/keyfile"
	"pbsfs/lock"
)

// The test binary doubles as pbsfs: with PBSFS_TEST_MAIN=1 it runs main.
// The end-to-end tests start it as a child process, mount for real and
// stop it the ways users do.
func TestMain(m *testing.M) {
	if os.Getenv("PBSFS_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func needFUSE(t *testing.T) {
	t.Helper()
	testsupport.RequireFUSE(t)
}

// pbsfsProc is a running pbsfs child.
type pbsfsProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	lines  chan string // stderr lines
	done   chan error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startPBSFS(t *testing.T, args ...string) *pbsfsProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PBSFS_TEST_MAIN=1")
	p := &pbsfsProc{t: t, cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{},
		lines: make(chan string, 100), done: make(chan error, 1)}
	cmd.Stdout = p.stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.stderr.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.done <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return p
}

// waitServing waits for the "serving" line.
func (p *pbsfsProc) waitServing() {
	p.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, "pbsfs: serving ") {
				return
			}
		case err := <-p.done:
			p.t.Fatalf("pbsfs exited before serving: %v\n%s", err, p.stderr.String())
		case <-timeout:
			p.t.Fatalf("pbsfs did not start serving\n%s", p.stderr.String())
		}
	}
}

// wait waits for the exit and returns the exit code.
func (p *pbsfsProc) wait() int {
	p.t.Helper()
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("pbsfs did not exit\n%s", p.stderr.String())
		return -1
	}
}

func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// startBusy starts a process whose working directory is in the mount.
func startBusy(t *testing.T, mnt string) *exec.Cmd {
	t.Helper()
	busy := exec.Command("sleep", "30")
	busy.Dir = filepath.Join(mnt, "vm")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Process.Kill(); busy.Wait() })
	return busy
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func newStore(t *testing.T) (store, mnt, locks string) {
	t.Helper()
	dir := t.TempDir()
	store = filepath.Join(dir, "store")
	if _, err := demo.Sample(store); err != nil {
		t.Fatal(err)
	}
	mnt = filepath.Join(dir, "mnt")
	mkdirs(t, mnt)
	return store, mnt, filepath.Join(dir, "locks")
}

func shell(t *testing.T, script string) (string, error) {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	return string(out), err
}

func TestMountAndSignals(t *testing.T) {
	needFUSE(t)
	for _, c := range []struct {
		name string
		stop func(p *pbsfsProc, mnt string)
	}{
		{"SIGINT", func(p *pbsfsProc, mnt string) { p.cmd.Process.Signal(syscall.SIGINT) }},
		{"SIGTERM", func(p *pbsfsProc, mnt string) { p.cmd.Process.Signal(syscall.SIGTERM) }},
		{"external unmount", func(p *pbsfsProc, mnt string) {
			if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
				t.Errorf("fusermount3 -u: %v %s", err, out)
			}
		}},
		{"SIGTERM while busy", func(p *pbsfsProc, mnt string) {
			// A process with its working directory in the mount keeps it
			// busy: the mount is detached at once, pbsfs keeps serving the
			// process and exits once it is gone.
			busy := startBusy(t, mnt)
			p.cmd.Process.Signal(syscall.SIGTERM)
			waitFor(t, "lazy detach", func() bool { return !isMounted(t, mnt) })
			select {
			case <-p.done:
				t.Fatal("pbsfs exited while the detached mount was in use")
			case <-time.After(300 * time.Millisecond):
			}
			if _, err := os.ReadDir(filepath.Join("/proc", fmt.Sprint(busy.Process.Pid), "cwd")); err != nil {
				t.Errorf("the busy process lost its directory: %v", err)
			}
			busy.Process.Kill()
			busy.Wait()
		}},
		{"second SIGINT while busy", func(p *pbsfsProc, mnt string) {
			startBusy(t, mnt)
			p.cmd.Process.Signal(syscall.SIGINT)
			waitFor(t, "lazy detach", func() bool { return strings.Contains(p.stderr.String(), "is detached now") })
			p.cmd.Process.Signal(syscall.SIGINT)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			store, mnt, locks := newStore(t)
			p := startPBSFS(t, "mount", "-v", "--lock-scheme", "run", "--lock-dir", locks, "--store", "demo", store, mnt)
			p.waitServing()
			if !isMounted(t, mnt) {
				t.Fatal("not mounted after the serving line")
			}
			out, err := shell(t, "cat "+filepath.Join(mnt, demo.SampleProtected, "manifest.json"))
			if err != nil || !strings.Contains(out, `"backup-id": "100"`) {
				t.Errorf("cat manifest.json: %v %q", err, out)
			}
			c.stop(p, mnt)
			if code := p.wait(); code != ExitOK {
				t.Errorf("exit code %d\n%s", code, p.stderr.String())
			}
			if isMounted(t, mnt) {
				t.Error("still mounted")
				exec.Command("fusermount3", "-u", "-z", mnt).Run()
			}
			if !strings.Contains(p.stderr.String(), "fusermount3 -u "+mnt) {
				t.Errorf("no unmount hint in\n%s", p.stderr.String())
			}
		})
	}
}

func TestMountRefusesNonEmptyAndWrongStore(t *testing.T) {
	store, mnt, _ := newStore(t)
	os.WriteFile(filepath.Join(mnt, "file"), nil, 0o644)
	if code, _, errs := runCLI("mount", store, mnt); code != ExitMountPoint || !strings.Contains(errs, "is not empty") {
		t.Errorf("non-empty mountpoint: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI("mount", filepath.Join(store, "vm"), t.TempDir()); code != ExitDatastore || !strings.Contains(errs, "no .chunks") {
		t.Errorf("not a datastore: exit %d %q", code, errs)
	}
}

func TestDemoCommand(t *testing.T) {
	needFUSE(t)
	keep := filepath.Join(t.TempDir(), "kept")
	p := startPBSFS(t, "demo", keep)
	p.waitServing()
	var mnt string
	deadline := time.Now().Add(10 * time.Second)
	for mnt == "" && time.Now().Before(deadline) {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if m, ok := strings.CutPrefix(l, "pbsfs demo: mounted at "); ok {
				mnt = m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if mnt == "" {
		t.Fatalf("no mountpoint in the output:\n%s", p.stdout.String())
	}
	out, err := shell(t, "ls "+mnt+" && rmdir "+filepath.Join(mnt, demo.SampleProtected))
	if err == nil || !strings.Contains(out, "ct\nhost\nns\nvm\n") || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("ls and rmdir protected: %v %q", err, out)
	}
	// Archives are shown, and the encrypted snapshot is readable with the
	// demo key the demo wrote and mounted with.
	out, err = shell(t, "cat "+filepath.Join(mnt, demo.SampleEncrypted, "qemu-server.conf")+" "+filepath.Join(mnt, demo.SampleVM, "qemu-server.conf"))
	if err != nil || strings.Count(out, "scsi0: local-lvm:") != 2 {
		t.Errorf("cat qemu-server.conf (encrypted and plain): %v %q", err, out)
	}
	var keyPath string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if k, ok := strings.CutPrefix(l, "pbsfs demo: wrote the demo encryption key to "); ok {
			keyPath = strings.TrimSuffix(k, " (no password)")
		}
	}
	if kc, err := keyfile.Load(keyPath); err != nil || kc.Encrypted() {
		t.Errorf("demo key file %q: %v", keyPath, err)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(); code != ExitOK {
		t.Errorf("exit %d\n%s", code, p.stderr.String())
	}
	if _, err := os.Stat(mnt); !os.IsNotExist(err) {
		t.Errorf("temporary mountpoint left behind: %v", err)
	}
	if _, err := datastore.Open(keep, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Store: "x"}}); err != nil {
		t.Errorf("kept datastore: %v", err)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Errorf("temporary key file left behind: %v", err)
	}
	for _, want := range []string{"cat ", "rmdir ", "fusermount3 -u " + mnt, "qemu-server.conf", "pbsfs mount --keyfile " + keyPath + " " + keep} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("tips lack %q:\n%s", want, p.stdout.String())
		}
	}
}
