package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// logWriter puts pbsfs's messages (log lines, the serving and unmounting
// lines) on stderr without ever holding up the mount. The FUSE handlers
// log from the request path, so a blocking write would stall requests: a
// pipe whose reader stopped reading (a pager left open) fills up, and a
// terminal that went away (an ssh session that dropped) or a pipe whose
// reader exited (`pbsfs mount ... 2>&1 | tee log`, tee killed) fails every
// write. So Write only queues a copy of the line; one goroutine writes the
// queue out. A full queue drops lines (counted, and the count written once
// there is room again); after the first failed write the error is reported
// once on the fallback writer (stdout, if that still works) and everything
// later is dropped silently. Write never fails. (SIGPIPE is ignored by
// notifySignals, so a broken pipe is an EPIPE error here, not the end of
// the process.)
type logWriter struct {
	out, fallback io.Writer

	mu      sync.Mutex
	queue   chan []byte
	closed  bool
	dropped int // lines dropped since the last report (guarded by mu)
	done    chan struct{}
}

// logQueueLines is how many lines may wait for a slow log reader.
const logQueueLines = 1024

// newLogWriter starts the writer goroutine; Close stops it.
func newLogWriter(out, fallback io.Writer) *logWriter {
	w := &logWriter{out: out, fallback: fallback, queue: make(chan []byte, logQueueLines), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues a copy of p, or drops it if the queue is full or closed.
func (w *logWriter) Write(p []byte) (int, error) {
	line := append([]byte(nil), p...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	select {
	case w.queue <- line:
	default:
		w.dropped++
	}
	return len(p), nil
}

func (w *logWriter) run() {
	defer close(w.done)
	failed := false
	for line := range w.queue {
		if failed {
			continue
		}
		w.mu.Lock()
		dropped := w.dropped
		w.dropped = 0
		w.mu.Unlock()
		if dropped > 0 {
			line = append(fmt.Appendf(nil, "pbsfs: %d log lines dropped: the log output did not keep up\n", dropped), line...)
		}
		if _, err := w.out.Write(line); err != nil {
			failed = true
			if w.fallback != nil {
				_, _ = fmt.Fprintf(w.fallback, "pbsfs: cannot write the log any more (%v); pbsfs keeps serving, "+
					"log lines are dropped from now on\n", err)
			}
		}
	}
}

// Close writes out what is queued, waiting at most timeout for a log
// reader that does not read, and drops everything written later.
func (w *logWriter) Close(timeout time.Duration) {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-time.After(timeout):
	}
}
