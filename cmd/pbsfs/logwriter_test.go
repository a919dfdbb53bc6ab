package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failingWriter fails every write, as stderr does once its pipe reader is
// gone.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) { w.n++; return 0, syscall.EPIPE }

// blockingWriter blocks every write until released, as a full pipe does.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestLogWriterBrokenOutput(t *testing.T) {
	out := &failingWriter{}
	var fallback bytes.Buffer
	w := newLogWriter(out, &fallback)
	for i := range 10 {
		if n, err := fmt.Fprintf(w, "line %d\n", i); err != nil || n != 7 {
			t.Fatalf("Write = %d, %v; want 7, nil", n, err)
		}
	}
	w.Close(time.Minute)
	if out.n != 1 {
		t.Errorf("%d writes to the broken output, want 1 (then dropped)", out.n)
	}
	if got := fallback.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "broken pipe") {
		t.Errorf("fallback got %q, want one report of the broken pipe", got)
	}
	if n, err := w.Write([]byte("after close\n")); err != nil || n != 12 {
		t.Errorf("Write after Close = %d, %v", n, err)
	}
}

func TestLogWriterStalledOutput(t *testing.T) {
	out := &blockingWriter{release: make(chan struct{})}
	w := newLogWriter(out, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3 * logQueueLines {
			fmt.Fprintf(w, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Write blocked on a stalled output")
	}
	close(out.release) // the reader reads again
	for len(w.queue) > 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Fprintf(w, "last\n")
	w.Close(time.Minute)
	got := out.buf.String()
	if !strings.Contains(got, "log lines dropped") || !strings.HasSuffix(got, "last\n") {
		t.Errorf("output lacks the dropped-lines note or the last line:\n%.300s ... %.300s", got, got[max(0, len(got)-300):])
	}
}

func TestLogWriterCloseTimeout(t *testing.T) {
	out := &blockingWriter{release: make(chan struct{})}
	defer close(out.release)
	w := newLogWriter(out, nil)
	fmt.Fprintf(w, "never written\n")
	start := time.Now()
	w.Close(50 * time.Millisecond)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Close waited %v for a stalled output", took)
	}
}
