package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// cleaner runs registered clean-up steps once, newest first: from a defer
// on the normal path, or from the signal handler or watchdog while the main
// goroutine may still be stuck in a request to a mount.
type cleaner struct {
	mu    sync.Mutex
	steps []cleanStep
	done  bool
	out   io.Writer
	ended chan struct{} // closed once run has finished
}

type cleanStep struct {
	id   int
	what string
	fn   func() error
}

func newCleaner(out io.Writer) *cleaner { return &cleaner{out: out, ended: make(chan struct{})} }

// add registers fn; the returned function runs it now and unregisters it
// (for things cleaned up on the normal path before the end of the run).
func (c *cleaner) add(what string, fn func() error) (now func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := len(c.steps) + 1
	if len(c.steps) > 0 {
		id = c.steps[len(c.steps)-1].id + 1
	}
	c.steps = append(c.steps, cleanStep{id: id, what: what, fn: fn})
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			if c.take(id) {
				err = fn()
			}
		})
		return err
	}
}

// take unregisters step id and reports whether it was still registered
// (and the cleaner has not run).
func (c *cleaner) take(id int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return false
	}
	for i, s := range c.steps {
		if s.id == id {
			c.steps = append(c.steps[:i], c.steps[i+1:]...)
			return true
		}
	}
	return false
}

// run runs every registered step, newest first, once; a second caller
// waits for the first to finish.
func (c *cleaner) run() {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		<-c.ended
		return
	}
	defer close(c.ended)
	c.done = true
	steps := c.steps
	c.steps = nil
	c.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].fn(); err != nil {
			fmt.Fprintf(c.out, "bench: clean-up: %s: %v\n", steps[i].what, err)
		}
	}
}

// onSignals makes SIGINT, SIGTERM and SIGHUP cancel the run (through
// cancel) and clean up; a second signal, or the main goroutine not coming
// back, is handled by cleaning up from here and exiting.
func (c *cleaner) onSignals(cancel func()) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	quit := make(chan struct{})
	go func() {
		select {
		case <-quit:
			return
		case sig := <-ch:
			fmt.Fprintf(c.out, "bench: %v: stopping and cleaning up\n", sig)
			cancel()
			// The main goroutine may be blocked in a syscall on a mount:
			// clean up from here (unmounting, killing pbsfs) so that it
			// comes back, then exit.
			c.run()
			os.Exit(130)
		}
	}()
	return func() {
		signal.Stop(ch)
		close(quit)
	}
}
