package fs

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPendingSignals(t *testing.T) {
	status := []byte("Name:\tcat\nSigQ:\t0/1\nSigPnd:\t0000000000000100\nShdPnd:\t0000000000000002\nSigBlk:\t0000000000000000\n")
	got := pendingSignals(status)
	if want := sigBit(9) | sigBit(2); got != want {
		t.Fatalf("pendingSignals = %#x, want %#x", got, want)
	}
	if got&stopSignals == 0 {
		t.Fatal("SIGKILL and SIGINT pending do not count as stopping")
	}
	if pendingSignals([]byte("SigPnd:\t0000000000010000\n"))&stopSignals != 0 { // SIGCHLD
		t.Fatal("a pending SIGCHLD counts as stopping")
	}
}

// TestUserInterrupt: an interrupted request's wait ends only once the
// requesting thread has a stop signal pending (here: a blocked SIGINT of
// this very thread), an INTERRUPT for any other signal leaves it waiting.
func TestUserInterrupt(t *testing.T) {
	if !stopping(0xfffffff0) {
		t.Fatal("a thread that does not exist is not stopping")
	}
	// Block SIGINT on a locked thread, so that it stays pending there.
	done := make(chan struct{})
	defer close(done)
	tidc := make(chan int)
	pendc := make(chan struct{})
	go func() {
		// The signal mask is per thread: this goroutine keeps its
		// thread (which ends with it, pending signal and all).
		runtime.LockOSThread()
		var set, old unix.Sigset_t
		set.Val[0] = 1 << (uint(syscall.SIGINT) - 1)
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
			t.Error(err)
		}
		tidc <- unix.Gettid()
		<-pendc
		_ = unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGINT)
		<-done
	}()
	signal.Ignore(syscall.SIGINT) // the process must survive the SIGINT
	defer signal.Reset(syscall.SIGINT)
	tid := uint32(<-tidc)

	parent, interrupt := context.WithCancel(context.Background())
	ctx, stop := userInterrupt(parent, tid)
	interrupt() // the kernel's INTERRUPT, for a signal that is not a stop signal
	select {
	case <-ctx.Done():
		t.Fatal("the wait ended without a stop signal pending")
	case <-time.After(10 * interruptPoll):
	}
	close(pendc)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the wait did not end with SIGINT pending")
	}
	stop()

}
