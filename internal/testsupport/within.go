package testsupport

import (
	"testing"
	"time"
)

// Within runs fn and fails the test when it has not returned after limit
// (a hung system call or request: the bound is generous, the point is that
// fn returns at all). It returns how long fn took and its error.
func Within(t testing.TB, what string, limit time.Duration, fn func() error) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		t.Fatalf("%s: no answer after %v", what, limit)
		return 0, nil
	}
}
