package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// handleSignals unmounts mnt on SIGHUP, SIGINT and SIGTERM alike, so that
// Serve returns and pbsfs exits 0 — also when the terminal pbsfs runs in
// goes away (an ssh session that drops sends SIGHUP). A busy mount (a shell
// cd'ed into it, an open file) cannot be unmounted normally; then it is
// detached lazily (fusermount3 -u -z): it disappears from the directory
// tree at once, the processes still using it keep working, and Serve
// returns when the last of them lets go. Any further signal closes the
// returned channel — while the unmount still runs, after it failed, or
// after the lazy detach: serve then stops waiting and pbsfs exits (having
// detached the mount lazily if that had not happened yet), and processes
// still using the mount get errors. The unmount runs apart from the signal
// loop, so that the second signal is acted on even while fusermount3 hangs.
// The returned function stops the handling. ch comes from notifySignals,
// called before mounting so that no signal is missed.
func handleSignals(ch chan os.Signal, mnt string, log *slog.Logger, stderr io.Writer) (force <-chan struct{}, stop func()) {
	quit := make(chan struct{})
	forceCh := make(chan struct{})
	go func() {
		signaled := false
		for {
			select {
			case <-quit:
				return
			case sig := <-ch:
				if signaled {
					fmt.Fprintf(stderr, "pbsfs: %v received again, exiting; processes still using the mount get errors\n", sig)
					close(forceCh)
					return
				}
				signaled = true
				fmt.Fprintf(stderr, "pbsfs: %v received, unmounting %s\n", sig, mnt)
				go func() {
					lazy, err := unmount(mnt, log)
					switch {
					case err != nil:
						fmt.Fprintf(stderr, "pbsfs: cannot unmount %s: %v (signal again to exit anyway)\n", mnt, err)
					case lazy:
						fmt.Fprintf(stderr, "pbsfs: %s was busy and is detached now; pbsfs exits when the last process "+
							"using it lets go (signal again to exit at once)\n", mnt)
					}
				}()
			}
		}
	}()
	return forceCh, func() {
		signal.Stop(ch)
		close(quit)
	}
}

// notifySignals starts catching SIGHUP, SIGINT and SIGTERM (instead of
// dying from them) and queues them for handleSignals. It also ignores
// SIGPIPE for the whole process: the Go runtime lets a write to a broken
// pipe on stdout or stderr kill the process unless SIGPIPE is ignored or
// caught, and pbsfs must outlive its log reader (`... 2>&1 | tee log`, tee
// gone) — a write then fails with EPIPE, which logWriter swallows.
func notifySignals() chan os.Signal {
	signal.Ignore(syscall.SIGPIPE)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	return ch
}

// unmount unmounts mnt, lazily if it is busy (lazy then reports true).
func unmount(mnt string, log *slog.Logger) (lazy bool, err error) {
	err = fusermount("-u", mnt)
	if err == nil {
		return false, nil
	}
	log.Info("unmount failed, trying a lazy unmount", "mountpoint", mnt, "err", err)
	if lerr := fusermount("-u", "-z", mnt); lerr != nil {
		return false, fmt.Errorf("%v; lazy unmount: %v", err, lerr)
	}
	return true, nil
}

// fusermount runs fusermount3 (what fuse.Unmount runs) in its own process
// group, so that a second Ctrl-C on the terminal does not kill it midway.
func fusermount(args ...string) error {
	cmd := exec.Command("fusermount3", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// handleStatus prints a status line on stderr at each SIGUSR1 (`kill -USR1
// PID`): goroutines, open file descriptors, heap in use and resident set
// size — what a soak test or an admin watches for leaks. The returned
// function stops it.
func handleStatus(stderr io.Writer) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-quit:
				return
			case <-ch:
				fmt.Fprintln(stderr, statusLine())
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(quit)
	}
}

// statusLine is "pbsfs: status: goroutines=N fds=N heap-inuse=BYTES
// rss=BYTES" (-1 for what cannot be read).
func statusLine() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents) - 1 // without the descriptor reading the directory
	}
	rss := int64(-1)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					rss = kb << 10
				}
			}
		}
	}
	return fmt.Sprintf("pbsfs: status: goroutines=%d fds=%d heap-inuse=%d rss=%d", runtime.NumGoroutine(), fds, ms.HeapInuse, rss)
}
