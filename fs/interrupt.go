package fs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// interruptPoll is how often a lock wait that the kernel interrupted looks
// at the requester's pending signals.
const interruptPoll = 20 * time.Millisecond

// stopSignals are the signals that mean "stop what you are doing": Ctrl-C,
// kill's default, a closed terminal, Ctrl-\, and SIGKILL, which the kernel
// adds to every thread of a process a fatal signal is killing.
var stopSignals = sigBit(2) | sigBit(15) | sigBit(1) | sigBit(3) | sigBit(9)

func sigBit(n uint) uint64 { return 1 << (n - 1) }

// userInterrupt gives a lock wait on behalf of thread tid (the FUSE
// request's Pid) a context that ends only when the user meant to stop the
// program: the kernel interrupted the request (ctx done) and the thread has
// one of stopSignals pending, or is gone.
//
// The kernel sends INTERRUPT for any signal the program catches while it
// waits — a child's SIGCHLD, SIGWINCH, SIGALRM, the Go runtime's SIGURG —
// and a close(2) that failed with EINTR for one of those would lose a save
// the program never meant to give up (a local file system's close would not
// fail). For those the wait goes on, bounded by the lock timeout as always.
// Where the thread cannot be seen (tid 0: a requester outside pbsfs's PID
// namespace) every interrupt ends the wait, as bazil's context does.
//
// The returned stop must be called when the wait is over; it ends the
// watch, which runs only after an interrupt.
func userInterrupt(ctx context.Context, tid uint32) (context.Context, context.CancelFunc) {
	if tid == 0 {
		return ctx, func() {}
	}
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopWatch := context.AfterFunc(ctx, func() {
		t := time.NewTicker(interruptPoll)
		defer t.Stop()
		for {
			if stopping(tid) {
				cancel()
				return
			}
			select {
			case <-out.Done():
				return
			case <-t.C:
			}
		}
	})
	return out, func() {
		stopWatch()
		cancel()
	}
}

// stopping reports whether thread tid has a stop signal pending, or no
// longer exists.
func stopping(tid uint32) bool {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	return pendingSignals(b)&stopSignals != 0
}

// pendingSignals returns the union of the thread's (SigPnd) and the
// process's (ShdPnd) pending signal sets from a /proc/TID/status text.
func pendingSignals(status []byte) uint64 {
	var set uint64
	for line := range bytes.Lines(status) {
		for _, key := range [][]byte{[]byte("SigPnd:"), []byte("ShdPnd:")} {
			if v, ok := bytes.CutPrefix(line, key); ok {
				n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
				if err == nil {
					set |= n
				}
			}
		}
	}
	return set
}
