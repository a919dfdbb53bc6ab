package s3store

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pbsfs/internal/testsupport"
	"pbsfs/s3store/s3test"
)

// The faults a stopped or frozen server cannot show (server_test.go's
// TestFaults covers those), injected by an s3test.Proxy in front of the
// real server: slow answers, transient errors, refused connections, a
// server that reads a chunk request and never answers.

// proxied returns a proxy in front of the test server (with the sample
// bucket uploaded) and a real chunk of the sample store.
func proxied(t *testing.T) (*s3test.Proxy, [32]byte) {
	t.Helper()
	_, dir := sampleBucket(t, Options{})
	p, err := s3test.NewProxy(srv.Need(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, someChunk(t, dir)
}

// someChunk is the digest of a non-empty chunk file of a local store.
func someChunk(t *testing.T, dir string) [32]byte {
	t.Helper()
	var dg [32]byte
	found := false
	_ = filepath.WalkDir(filepath.Join(dir, ".chunks"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || found {
			return nil
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			return nil
		}
		dg, found = parseDigest(e.Name())
		return nil
	})
	if !found {
		t.Fatal("no chunk in the sample store")
	}
	return dg
}

func throughProxy(t *testing.T, p *s3test.Proxy, o Options) *Bucket {
	t.Helper()
	e := endpointOf(srv.Need(t))
	e.URL = p.Endpoint()
	b, err := New(e, Location{Bucket: "sample", Store: "store1"}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// ops are the three kinds of request a mount sends.
func ops(b *Bucket, chunk [32]byte) []struct {
	name string
	fn   func() error
} {
	return []struct {
		name string
		fn   func() error
	}{
		{"listing", func() error { _, err := b.ReadDir(context.Background(), "vm/100"); return err }},
		{"metadata GET", func() error { _, _, err := b.ReadFile(context.Background(), "vm/100/owner", 1<<20); return err }},
		{"chunk GET", func() error { _, err := b.ReadChunk(context.Background(), chunk, 32<<20); return err }},
	}
}

// TestSlowResponsesUnderTheTimeout: answers that take a while, but less
// than the timeout, succeed — listings, metadata and chunks — and really
// went through the slow proxy.
func TestSlowResponsesUnderTheTimeout(t *testing.T) {
	p, chunk := proxied(t)
	const delay = 400 * time.Millisecond
	p.Delay(delay)
	b := throughProxy(t, p, Options{Timeout: 10 * time.Second, Retries: -1})
	for _, op := range ops(b, chunk) {
		d, err := testsupport.Within(t, op.name, time.Minute, op.fn)
		if err != nil {
			t.Errorf("%s, each answer %v late, timeout 10s: %v", op.name, delay, err)
		}
		if d < delay {
			t.Errorf("%s took %v: it did not go through the slow proxy", op.name, d)
		}
		t.Logf("%s: %v", op.name, d.Round(time.Millisecond))
	}
	if p.Requests() != 3 {
		t.Errorf("the proxy saw %d requests, want 3", p.Requests())
	}
}

// TestSlowResponsesOverTheTimeout: an answer slower than the timeout ends
// the request in ErrTimeout, long before the answer would come.
func TestSlowResponsesOverTheTimeout(t *testing.T) {
	p, chunk := proxied(t)
	p.Delay(time.Hour)
	b := throughProxy(t, p, Options{Timeout: time.Second, Retries: 1})
	for _, op := range ops(b, chunk) {
		d, err := testsupport.Within(t, op.name, time.Minute, op.fn)
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: %v, want a timeout", op.name, err)
		}
		t.Logf("%s: %v after %v", op.name, err, d.Round(time.Millisecond))
	}
}

// TestHungChunkRequest: a server that reads the chunk request and never
// answers ends it in ErrTimeout; once it answers again the same bucket
// reads the chunk (the failure was not cached).
func TestHungChunkRequest(t *testing.T) {
	p, chunk := proxied(t)
	b := throughProxy(t, p, Options{Timeout: time.Second, Retries: 1})
	p.Hang()
	d, err := testsupport.Within(t, "hung chunk GET", time.Minute, func() error {
		_, err := b.ReadChunk(context.Background(), chunk, 32<<20)
		return err
	})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("hung chunk GET: %v, want a timeout", err)
	}
	t.Logf("hung chunk GET: %v after %v", err, d.Round(time.Millisecond))
	if err := p.Pass(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadChunk(context.Background(), chunk, 32<<20); err != nil {
		t.Errorf("after the server answers again: %v", err)
	}
}

// TestTransientErrorsAreRetried: 503 SlowDown answers are retried with
// backoff and the request succeeds when a retry gets through; with no
// retries the same error is the request's (ErrServer); and retries never
// outlast the timeout.
func TestTransientErrorsAreRetried(t *testing.T) {
	p, chunk := proxied(t)
	b := throughProxy(t, p, Options{Timeout: 20 * time.Second, Retries: 3})
	for _, op := range ops(b, chunk) {
		p.FailNext(2, http.StatusServiceUnavailable)
		r0, p0 := b.Requests(), p.Requests()
		if _, err := testsupport.Within(t, op.name, time.Minute, op.fn); err != nil {
			t.Errorf("%s after two 503s, 3 retries: %v", op.name, err)
		}
		if sent, seen := b.Requests()-r0, p.Requests()-p0; sent != 3 || seen != 3 {
			t.Errorf("%s: %d requests sent, %d seen by the server, want 3 (two 503s, then the answer)", op.name, sent, seen)
		}
	}

	none := throughProxy(t, p, Options{Timeout: 20 * time.Second, Retries: -1})
	p.FailNext(1, http.StatusServiceUnavailable)
	if _, err := none.ReadDir(context.Background(), "ct"); !errors.Is(err, ErrServer) {
		t.Errorf("a 503 without retries: %v, want ErrServer", err)
	}

	many := throughProxy(t, p, Options{Timeout: 2 * time.Second, Retries: 100})
	p.FailNext(1<<30, http.StatusServiceUnavailable)
	defer p.FailNext(0, 0)
	d, err := testsupport.Within(t, "endless 503s", time.Minute, func() error {
		_, err := many.ReadChunk(context.Background(), chunk, 32<<20)
		return err
	})
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrServer) {
		t.Errorf("endless 503s: %v", err)
	}
	t.Logf("endless 503s, 100 retries, timeout 2s: %v after %v, %d requests", err, d.Round(time.Millisecond), many.Requests())
}

// TestRefusedConnections: an endpoint that refuses connections is
// ErrUnreachable for every kind of request; when it accepts again the
// same bucket works.
func TestRefusedConnections(t *testing.T) {
	p, chunk := proxied(t)
	b := throughProxy(t, p, Options{Timeout: 5 * time.Second, Retries: 1})
	p.Refuse()
	for _, op := range ops(b, chunk) {
		d, err := testsupport.Within(t, op.name, time.Minute, op.fn)
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: %v, want ErrUnreachable", op.name, err)
		}
		t.Logf("%s: %v after %v", op.name, err, d.Round(time.Millisecond))
	}
	if err := p.Pass(); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops(b, chunk) {
		if err := op.fn(); err != nil {
			t.Errorf("%s after the endpoint is back: %v", op.name, err)
		}
	}
}
