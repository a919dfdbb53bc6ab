package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// system is one of the three things measured.
type system int

const (
	sysRaw    system = iota // the datastore directory itself
	sysBindfs               // bindfs --no-allow-other over it
	sysPbsfs                // pbsfs mount over it
	numSystems
)

func (s system) String() string {
	return [...]string{"raw", "bindfs", "pbsfs"}[s]
}

// order is the order systems run in round r: rotated every round, so that
// none always runs first (on a cold page cache, or right after a neighbour's
// burst of activity) or last.
func order(r int, systems []system) []system {
	n := len(systems)
	out := make([]system, n)
	for i := range systems {
		out[i] = systems[(i+r)%n]
	}
	return out
}

// mount is a mounted (or, for raw, merely named) view of a store.
type mount struct {
	sys   system
	dir   string // where the workload looks
	store string

	cmd     *exec.Cmd     // pbsfs process
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error
	stderr  *tailBuffer
	close   func() error // registered with the cleaner
}

// pid is the pbsfs process id (0 for other systems).
func (m *mount) pid() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// peakRSS returns VmHWM of the pbsfs process in bytes (0 for other
// systems).
func (m *mount) peakRSS() (int64, error) {
	if m.pid() == 0 {
		return 0, nil
	}
	return vmHWM(m.pid())
}

// vmHWM reads the peak resident set size of process pid.
func vmHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	return parseVmHWM(data)
}

// parseVmHWM finds "VmHWM:  12345 kB" in a /proc/PID/status text.
func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %q: %w", sc.Text(), err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("peak RSS: no VmHWM line in /proc/PID/status")
}

// tailBuffer keeps the last lines written to it (pbsfs's stderr, for error
// messages) and signals when a line with a given prefix shows up.
type tailBuffer struct {
	mu     sync.Mutex
	lines  []string
	prefix string
	seen   chan struct{}
	once   sync.Once
}

func newTailBuffer(readyPrefix string) *tailBuffer {
	return &tailBuffer{prefix: readyPrefix, seen: make(chan struct{})}
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 40 {
		t.lines = t.lines[len(t.lines)-40:]
	}
	t.mu.Unlock()
	if t.prefix != "" && strings.HasPrefix(line, t.prefix) {
		t.once.Do(func() { close(t.seen) })
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// mountSystem makes store visible through sys at a fresh mount point below
// b.mntDir; raw needs nothing. The mount is registered with the cleaner.
func (b *bench) mountSystem(ctx context.Context, sys system, store string) (*mount, error) {
	m := &mount{sys: sys, store: store}
	if sys == sysRaw {
		m.dir = store
		m.close = func() error { return nil }
		return m, nil
	}
	b.mounts++
	dir := fmt.Sprintf("%s/%s-%d", b.mntDir, sys, b.mounts)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	m.dir = dir
	switch sys {
	case sysBindfs:
		out, err := exec.CommandContext(ctx, "bindfs", "--no-allow-other", store, dir).CombinedOutput()
		if err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("bindfs %s %s: %w: %s", store, dir, err, bytes.TrimSpace(out))
		}
		m.close = b.cl.add("unmount "+dir, func() error { return m.unmount() })
	case sysPbsfs:
		if err := b.startPbsfs(ctx, m); err != nil {
			os.Remove(dir)
			return nil, err
		}
	}
	if err := waitMounted(ctx, dir, 10*time.Second); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// startPbsfs runs `pbsfs mount` in the foreground (a child in its own
// process group, so that a ^C reaches the bench, which unmounts first) and
// waits for its "serving" line.
func (b *bench) startPbsfs(ctx context.Context, m *mount) error {
	args := []string{"mount", "--lock-scheme", "run", "--lock-dir", b.lockDir, "--store", "bench"}
	var env []string // nil: the bench's
	if isS3Source(m.store) {
		args, env = b.s3MountArgs(m.store)
		args = append([]string{"mount"}, args...)
	}
	if b.pbsfsDebug != nil {
		args = append(args, "--debug")
	}
	if !b.archiveStore(m.store) {
		// demo.Large writes manifests only: the archives they list do
		// not exist, and would be shown (failing with EIO) by default.
		args = append(args, "--no-archives")
	}
	if b.cfg.profileDir != "" {
		b.profiles++
		prefix := fmt.Sprintf("%s/pbsfs-%d", b.cfg.profileDir, b.profiles)
		args = append(args, "--cpuprofile", prefix+".cpu.pprof", "--memprofile", prefix+".heap.pprof")
	}
	args = append(args, m.store, m.dir)
	cmd := exec.Command(b.pbsfsBin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("pbsfs: %w", err)
	}
	m.stderr = newTailBuffer("pbsfs: serving ")
	counter := b.pbsfsDebug
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pbsfs: %w", err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			if counter != nil {
				counter.add(sc.Text())
			}
			m.stderr.add(sc.Text())
		}
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	m.close = b.cl.add("unmount "+m.dir, func() error { return m.unmount() })
	select {
	case <-m.stderr.seen:
		return nil
	case <-m.exited:
		m.close()
		return fmt.Errorf("pbsfs exited before serving (%v): %s", m.waitErr, m.stderr)
	case <-time.After(30 * time.Second):
		m.close()
		return fmt.Errorf("pbsfs did not report serving within 30 s: %s", m.stderr)
	case <-ctx.Done():
		m.close()
		return ctx.Err()
	}
}

// waitMounted waits until dir is a FUSE mount point in /proc/self/mountinfo.
func waitMounted(ctx context.Context, dir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := isFuseMount(dir)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not mounted after %v", dir, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// isFuseMount reports whether dir is the mount point of a FUSE mount.
func isFuseMount(dir string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// id parent maj:min root mountpoint options ... - fstype source ...
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMountinfo(f[4]) != dir {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) && strings.HasPrefix(f[i+1], "fuse") {
				return true, nil
			}
		}
	}
	return false, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmount unmounts m (lazily if it stays busy), waits for pbsfs to exit
// (killing it if it does not) and removes the mount point.
func (m *mount) unmount() error {
	var errs []error
	if mounted, _ := isFuseMount(m.dir); mounted {
		var err error
		for i := 0; i < 20; i++ {
			if err = fusermount("-u", m.dir); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			if lerr := fusermount("-uz", m.dir); lerr != nil {
				errs = append(errs, err, lerr)
			}
		}
	}
	if m.cmd != nil {
		select {
		case <-m.exited:
		case <-time.After(15 * time.Second):
			errs = append(errs, fmt.Errorf("pbsfs (pid %d) still running 15 s after the unmount; killed", m.pid()))
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
		if m.waitErr != nil {
			errs = append(errs, fmt.Errorf("pbsfs exited with %v: %s", m.waitErr, m.stderr))
		}
	}
	if err := os.Remove(m.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func fusermount(flag, dir string) error {
	out, err := exec.Command("fusermount3", flag, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 %s %s: %w: %s", flag, dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// dropCaches writes back dirty pages and drops the page, dentry and inode
// caches (root only).
func dropCaches() error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// canDropCaches reports whether cold runs are possible.
func canDropCaches() bool {
	return unix.Access("/proc/sys/vm/drop_caches", unix.W_OK) == nil && os.Geteuid() == 0
}
