package s3store

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"pbsfs/s3store/s3test"
)

var srv s3test.Server

func TestMain(m *testing.M) {
	code := m.Run()
	srv.Close()
	if sample.dir != "" {
		_ = os.RemoveAll(filepath.Dir(sample.dir))
	}
	if benchStore.local != "" {
		_ = os.RemoveAll(benchStore.local)
	}
	os.Exit(code)
}

func endpointOf(s *s3test.Server) Endpoint {
	return Endpoint{URL: s.Endpoint(), PathStyle: true,
		Credentials: Credentials{AccessKey: s.AccessKey, SecretKey: NewSecret(s.SecretKey)}}
}

// WriteSampleStore writes the demo store (demo.Sample) into dir. It is set
// by sample_test.go, of the external test package: these tests cannot
// import package demo, which imports datastore, which imports s3store.
var WriteSampleStore func(dir string) error

// sampleVM is sampleVM (sample_test.go checks that it is).
const sampleVM = "vm/100/2024-06-01T02:00:04Z"

// sample is the demo store uploaded once per package to bucket "sample",
// datastore "store1".
var sample struct {
	once sync.Once
	dir  string
	err  error
}

func sampleBucket(t *testing.T, o Options) (*Bucket, string) {
	t.Helper()
	s := srv.Need(t)
	sample.once.Do(func() {
		dir, err := os.MkdirTemp("", "pbsfs-s3-sample-")
		if err != nil {
			sample.err = err
			return
		}
		sample.dir = filepath.Join(dir, "store1")
		if err := WriteSampleStore(sample.dir); err != nil {
			sample.err = err
			return
		}
		w, err := New(endpointOf(s), Location{Bucket: "sample", Store: "store1"}, Options{})
		if err != nil {
			sample.err = err
			return
		}
		defer w.Close()
		if err := w.CreateBucket(context.Background()); err != nil {
			sample.err = err
			return
		}
		_, sample.err = Upload(context.Background(), w, sample.dir, "pbs-test")
	})
	if sample.err != nil {
		t.Fatalf("sample bucket: %v", sample.err)
	}
	b, err := Open(context.Background(), endpointOf(s), Location{Bucket: "sample", Store: "store1"}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, sample.dir
}

// localTree lists the metadata files of a local store as the bucket holds
// them: datastore-relative paths of the files PBS uploads, plus the
// namespace markers.
func localTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, top := range []string{"vm", "ct", "host", "ns"} {
		_ = filepath.WalkDir(filepath.Join(dir, top), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			if e.IsDir() {
				if isNamespaceDir(rel) {
					out[rel+"/.namespace"] = ""
				}
				return nil
			}
			if isMetadataFile(e.Name()) {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				out[rel] = string(data)
			}
			return nil
		})
	}
	return out
}

// walk reads the bucket's metadata tree level by level through ReadDir and
// ReadFile.
func walk(t *testing.T, b *Bucket, rel string, out map[string]string) error {
	entries, err := b.ReadDir(context.Background(), rel)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := strings.TrimPrefix(rel+"/"+e.Name, "/")
		if e.Dir {
			if err := walk(t, b, p, out); err != nil {
				return err
			}
			continue
		}
		data, info, err := b.ReadFile(context.Background(), p, 64<<20)
		if err != nil {
			return err
		}
		if info.Size != int64(len(data)) || info.ETag == "" || info.LastModified.IsZero() || info != e.Info {
			t.Errorf("%s: identity %+v for %d bytes, listing said %+v", p, info, len(data), e.Info)
		}
		out[p] = string(data)
	}
	return nil
}

// TestBucketEqualsLocalStore: the demo store uploaded as PBS 4 lays it out
// reads back, level by level, as the same tree with the same bytes, and
// every chunk reads back equal to the local chunk file.
func TestBucketEqualsLocalStore(t *testing.T) {
	b, dir := sampleBucket(t, Options{})
	want := localTree(t, dir)
	got := map[string]string{}
	if err := walk(t, b, "", got); err != nil {
		t.Fatal(err)
	}
	if len(want) < 20 {
		t.Fatalf("local tree has only %d files", len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s missing from the bucket", k)
		} else if g != v {
			t.Errorf("%s differs", k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s in the bucket but not in the local store", k)
		}
	}
	// The .in-use marker names the PBS host, as PBS 4 writes it.
	if data, _, err := b.get(context.Background(), "read", "store1/.in-use", 1<<10, "", nil); err != nil || string(data) != `{"hostname":"pbs-test"}` {
		t.Errorf(".in-use = %q, %v", data, err)
	}
	// Stat of a directory and a file, from the listing.
	if e, err := b.Stat(context.Background(), "vm/100"); err != nil || !e.Dir {
		t.Errorf("Stat vm/100 = %+v, %v", e, err)
	}
	if e, err := b.Stat(context.Background(), "vm/100/owner"); err != nil || e.Dir || e.Info.Size == 0 {
		t.Errorf("Stat vm/100/owner = %+v, %v", e, err)
	}
	if _, err := b.Stat(context.Background(), "vm/999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat vm/999: %v", err)
	}
	if _, err := b.ReadDir(context.Background(), "vm/999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadDir vm/999: %v", err)
	}
	if _, _, err := b.ReadFile(context.Background(), "vm/100/nothing", 1<<20); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadFile of a missing object: %v", err)
	}
	if _, _, err := b.ReadFile(context.Background(), sampleVM+"/index.json.blob", 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile over the limit: %v", err)
	}

	n := 0
	_ = filepath.WalkDir(filepath.Join(dir, ".chunks"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		local, _ := os.ReadFile(p)
		if len(local) == 0 {
			return nil
		}
		dg, ok := parseDigest(e.Name())
		if !ok {
			return nil
		}
		data, err := b.ReadChunk(context.Background(), dg, 32<<20)
		if err != nil {
			t.Fatalf("chunk %s: %v", e.Name(), err)
		}
		if string(data) != string(local) {
			t.Fatalf("chunk %s differs", e.Name())
		}
		n++
		return nil
	})
	if n == 0 {
		t.Fatal("no chunks compared")
	}
	t.Logf("%d metadata objects, %d chunks equal; %d requests", len(want), n, b.Requests())
}

// TestListingOneLevelPerRequest: listing the root and one group costs a
// request each, whatever lies below; a level of more than one page (1000
// keys) comes back whole from several requests.
func TestListingOneLevelPerRequest(t *testing.T) {
	b, _ := sampleBucket(t, Options{})
	r0 := b.Requests()
	if _, err := b.ReadDir(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadDir(context.Background(), "vm/100"); err != nil {
		t.Fatal(err)
	}
	if d := b.Requests() - r0; d != 2 {
		t.Errorf("two directory levels cost %d requests, want 2", d)
	}
	// Cached within the recheck interval.
	r0 = b.Requests()
	if _, err := b.ReadDir(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if d := b.Requests() - r0; d != 0 {
		t.Errorf("a second listing within the recheck interval cost %d requests", d)
	}

	s := srv.Need(t)
	w, err := New(endpointOf(s), Location{Bucket: "pages", Store: "big"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 1205
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ts := time.Unix(1700000000+int64(i)*60, 0).UTC().Format("2006-01-02T15:04:05Z")
			errs <- w.Put(context.Background(), ".cnt/vm/100/"+ts+"/index.json.blob", []byte("x"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(context.Background(), endpointOf(s), Location{Bucket: "pages", Store: "big"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r0 = r.Requests()
	entries, err := r.ReadDir(context.Background(), "vm/100")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n || !sort.SliceIsSorted(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name }) {
		t.Fatalf("%d entries, want %d, sorted", len(entries), n)
	}
	for _, e := range entries {
		if !e.Dir {
			t.Fatalf("%s is not a directory", e.Name)
		}
	}
	if d := r.Requests() - r0; d != 2 {
		t.Errorf("%d names cost %d requests, want 2 pages", n, d)
	}
}

// TestChangesShowAfterRecheck: what PBS replaces in the bucket shows once
// the recheck interval has passed, not before; an unchanged object is
// revalidated by a conditional GET.
func TestChangesShowAfterRecheck(t *testing.T) {
	s := srv.Need(t)
	loc := Location{Bucket: "recheck", Store: "st"}
	w, err := New(endpointOf(s), loc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(context.Background(), ".cnt/vm/100/notes", []byte("old")); err != nil {
		t.Fatal(err)
	}
	const recheck = 1500 * time.Millisecond
	r, err := Open(context.Background(), endpointOf(s), loc, Options{Recheck: recheck})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	r.now = func() time.Time { return now } // the test moves the clock
	data, info1, err := r.ReadFile(context.Background(), "vm/100/notes", 1<<20)
	if err != nil || string(data) != "old" {
		t.Fatalf("read: %q, %v", data, err)
	}
	if _, err := r.ReadDir(context.Background(), "vm/100"); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(context.Background(), ".cnt/vm/100/notes", []byte("new notes")); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(context.Background(), ".cnt/vm/100/owner", []byte("root@pam\n")); err != nil {
		t.Fatal(err)
	}
	if data, _, _ := r.ReadFile(context.Background(), "vm/100/notes", 1<<20); string(data) != "old" {
		t.Errorf("within the recheck interval: %q", data)
	}
	if es, _ := r.ReadDir(context.Background(), "vm/100"); len(es) != 1 {
		t.Errorf("within the recheck interval: %d entries", len(es))
	}
	now = now.Add(recheck)
	data, info2, err := r.ReadFile(context.Background(), "vm/100/notes", 1<<20)
	if err != nil || string(data) != "new notes" || info2.ETag == info1.ETag {
		t.Errorf("after the recheck interval: %q %v (etag %s → %s)", data, err, info1.ETag, info2.ETag)
	}
	if es, _ := r.ReadDir(context.Background(), "vm/100"); len(es) != 2 {
		t.Errorf("after the recheck interval: %d entries", len(es))
	}
	// Unchanged: a conditional GET keeps the cached copy.
	now = now.Add(recheck)
	r0 := r.Requests()
	data, info3, err := r.ReadFile(context.Background(), "vm/100/notes", 1<<20)
	if err != nil || string(data) != "new notes" || info3 != info2 || r.Requests()-r0 != 1 {
		t.Errorf("revalidation: %q %v %+v, %d requests", data, err, info3, r.Requests()-r0)
	}
}

// TestOpenErrors: every way a mount can fail at the start gives its kind,
// and no error text holds the secret.
func TestOpenErrors(t *testing.T) {
	s := srv.Need(t)
	sampleBucket(t, Options{})
	good := endpointOf(s)
	o := Options{Timeout: 3 * time.Second, Retries: 1}
	check := func(name string, e Endpoint, loc Location, want error) {
		t.Helper()
		start := time.Now()
		b, err := Open(context.Background(), e, loc, o)
		if err == nil {
			b.Close()
			t.Errorf("%s: opened", name)
			return
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
		if strings.Contains(err.Error(), s.SecretKey) || strings.Contains(err.Error(), "wrong-secret") {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		t.Logf("%s: %v", name, err)
	}
	loc := Location{Bucket: "sample", Store: "store1"}
	bad := good
	bad.Credentials.SecretKey = NewSecret("wrong-secret")
	check("wrong secret", bad, loc, ErrAuth)
	bad = good
	bad.Credentials.AccessKey = "nobody"
	check("unknown access key", bad, loc, ErrAuth)
	check("wrong bucket", good, Location{Bucket: "no-such-bucket", Store: "store1"}, ErrNoBucket)
	check("wrong store", good, Location{Bucket: "sample", Store: "store2"}, ErrNotFound)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	bad = good
	bad.URL = "http://" + addr
	check("unreachable", bad, loc, ErrUnreachable)

	// TLS in front of the real server: a self-signed certificate.
	target, _ := url.Parse(s.Endpoint())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	proxy := httptest.NewUnstartedServer(rp)
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	proxy.StartTLS()
	defer proxy.Close()
	tlsEnd := good
	tlsEnd.URL = proxy.URL
	check("self-signed, no fingerprint", tlsEnd, loc, ErrCertificate)
	wrongFP := tlsEnd
	wrongFP.Fingerprint = strings.Repeat("ab:", 31) + "ab"
	check("wrong fingerprint", wrongFP, loc, ErrCertificate)
	httpsToHTTP := good
	httpsToHTTP.URL = strings.Replace(s.Endpoint(), "http://", "https://", 1)
	check("https to a plain HTTP server", httpsToHTTP, loc, ErrCertificate)

	pinned := tlsEnd
	pinned.Fingerprint = Fingerprint(proxy.Certificate().Raw)
	b, err := Open(context.Background(), pinned, loc, o)
	if err != nil {
		t.Fatalf("pinned fingerprint: %v", err)
	}
	defer b.Close()
	if _, _, err := b.ReadFile(context.Background(), "vm/100/owner", 1<<20); err != nil {
		t.Errorf("read through the pinned endpoint: %v", err)
	}
}

// TestFaults: a hung server ends requests in ErrTimeout, a stopped one in
// ErrUnreachable, both within the timeout (plus retries); a missing chunk
// is ErrNotFound; cached data still reads; and the bucket recovers when
// the server is back. Runs last among the server tests (it stops the
// server).
func TestFaults(t *testing.T) {
	s := srv.Need(t)
	b, _ := sampleBucket(t, Options{Timeout: 2 * time.Second, Retries: 1, Recheck: time.Hour})
	var missing [32]byte
	missing[0] = 0xee
	if _, err := b.ReadChunk(context.Background(), missing, 1<<20); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing chunk: %v", err)
	}
	cached, _, err := b.ReadFile(context.Background(), "vm/100/owner", 1<<20)
	if err != nil {
		t.Fatal(err)
	}

	timed := func(name string, want error, fn func() error) {
		t.Helper()
		start := time.Now()
		err := fn()
		d := time.Since(start)
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
		// Timeout 2s, one retry: well under 15s even on a loaded machine;
		// the point is that it ends at all.
		if d > 15*time.Second {
			t.Errorf("%s took %v", name, d)
		}
		t.Logf("%s: %v after %v", name, err, d.Round(time.Millisecond))
	}

	s.Freeze()
	timed("listing a hung server", ErrTimeout, func() error { _, err := b.ReadDir(context.Background(), "ct"); return err })
	timed("reading from a hung server", ErrTimeout, func() error {
		_, _, err := b.ReadFile(context.Background(), "ct/200/owner", 1<<20)
		return err
	})
	if data, _, err := b.ReadFile(context.Background(), "vm/100/owner", 1<<20); err != nil || string(data) != string(cached) {
		t.Errorf("cached object while the server hangs: %v", err)
	}
	s.Thaw()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadDir(context.Background(), "ct"); err != nil {
		t.Errorf("after thaw: %v", err)
	}

	s.Stop()
	t.Cleanup(func() { _ = s.Start() }) // for the tests after this one, should this one fail
	timed("listing a stopped server", ErrUnreachable, func() error { _, err := b.ReadDir(context.Background(), "host"); return err })
	timed("reading a chunk from a stopped server", ErrUnreachable, func() error {
		var d [32]byte
		d[0] = 0x12
		_, err := b.ReadChunk(context.Background(), d, 1<<20)
		return err
	})
	if err := s.Start(); err != nil && err.Error() != "already running" {
		t.Fatal(err)
	}
	if _, err := b.ReadDir(context.Background(), "host"); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

// TestChunkCacheDir: chunks read once come from the cache directory, within
// its size limit, even with the server gone.
func TestChunkCacheDir(t *testing.T) {
	cache := t.TempDir()
	const limit = 256 << 10
	b, dir := sampleBucket(t, Options{CacheDir: cache, CacheDirBytes: limit, MemoryCacheBytes: 1})
	var read [][32]byte
	_ = filepath.WalkDir(filepath.Join(dir, ".chunks"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		dg, ok := parseDigest(e.Name())
		if !ok {
			return nil
		}
		if fi, _ := e.Info(); fi == nil || fi.Size() == 0 || fi.Size() > limit/4 {
			return nil
		}
		if _, err := b.ReadChunk(context.Background(), dg, 32<<20); err != nil {
			t.Fatal(err)
		}
		read = append(read, dg)
		return nil
	})
	if len(read) < 3 {
		t.Fatalf("only %d chunks read", len(read))
	}
	if got := dirBytes(t, cache); got > limit || got == 0 {
		t.Fatalf("cache directory holds %d bytes, limit %d", got, limit)
	}
	last := read[len(read)-1]
	b2, err := New(Endpoint{URL: "http://127.0.0.1:1", Credentials: Credentials{AccessKey: "x", SecretKey: NewSecret("y")}},
		b.Location(), Options{CacheDir: cache, CacheDirBytes: limit, Timeout: time.Second, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := b2.ReadChunk(context.Background(), last, 32<<20); err != nil {
		t.Errorf("cached chunk without a server: %v", err)
	}
}

func parseDigest(name string) ([32]byte, bool) {
	var dg [32]byte
	h, err := hex.DecodeString(name)
	if err != nil || len(h) != 32 {
		return dg, false
	}
	copy(dg[:], h)
	return dg, true
}

// stallingBody gives the first bytes of a response, then nothing until the
// request is given up: a server that stalls mid-answer.
type stallingBody struct {
	r    io.ReadCloser
	left int
	done <-chan struct{}
}

func (s *stallingBody) Read(p []byte) (int, error) {
	if s.left <= 0 {
		<-s.done
		return 0, errors.New("stalled response abandoned")
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= n
	return n, err
}

func (s *stallingBody) Close() error { return s.r.Close() }

// TestStalledResponses: a server that sends the headers and part of the
// body, then stalls, ends a listing page and a GET in ErrTimeout within the
// timeout (the transport's header timeout does not cover a body).
func TestStalledResponses(t *testing.T) {
	s := srv.Need(t)
	sampleBucket(t, Options{})
	target, _ := url.Parse(s.Endpoint())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.FlushInterval = -1 // headers and the first bytes go out at once
	rp.ModifyResponse = func(r *http.Response) error {
		if r.StatusCode == http.StatusOK && r.Request.Method == http.MethodGet {
			r.Body = &stallingBody{r: r.Body, left: 64, done: r.Request.Context().Done()}
		}
		return nil
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()
	e := endpointOf(s)
	e.URL = proxy.URL
	b, err := New(e, Location{Bucket: "sample", Store: "store1"}, Options{Timeout: 2 * time.Second, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tc := range []struct {
		name string
		fn   func() error
	}{
		{"listing", func() error { _, err := b.ReadDir(context.Background(), "vm/100"); return err }},
		{"metadata GET", func() error {
			_, _, err := b.ReadFile(context.Background(), sampleVM+"/index.json.blob", 1<<20)
			return err
		}},
	} {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- tc.fn() }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("%s: %v, want a timeout", tc.name, err)
			}
			t.Logf("%s: %v after %v", tc.name, err, time.Since(start).Round(time.Millisecond))
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: still waiting after 60s with a 2s timeout", tc.name)
		}
	}
}

// SampleVMForTest exposes sampleVM to sample_test.go.
const SampleVMForTest = sampleVM

// TestReadChunkInto checks the datastore's way of reading chunks: the chunk
// file lands in the caller's buffer, byte for byte what ReadChunk gives,
// without a copy kept in the bucket's memory (a second read asks the
// server again) and straight from that memory when ReadChunk had cached it.
func TestReadChunkInto(t *testing.T) {
	b, dir := sampleBucket(t, Options{})
	var dg [32]byte
	var want []byte
	_ = filepath.WalkDir(filepath.Join(dir, ".chunks"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || want != nil {
			return nil
		}
		if d, ok := parseDigest(e.Name()); ok {
			if data, err := os.ReadFile(p); err == nil && len(data) > 0 {
				dg, want = d, data
			}
		}
		return nil
	})
	if want == nil {
		t.Fatal("no chunk in the sample store")
	}
	var given [][]byte
	alloc := func(n int) ([]byte, error) {
		buf := make([]byte, n)
		given = append(given, buf)
		return buf, nil
	}
	ctx := context.Background()
	for round := range 2 {
		before := b.Requests()
		got, err := b.ReadChunkInto(ctx, dg, 32<<20, alloc)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("round %d: %d bytes, not the chunk file's %d", round, len(got), len(want))
		}
		if len(given) != round+1 || &got[0] != &given[round][0] {
			t.Fatalf("round %d: the chunk is not in the buffer alloc gave", round)
		}
		if b.Requests() == before {
			t.Fatalf("round %d: no request: the bucket kept the chunk in memory", round)
		}
	}
	if _, err := b.ReadChunk(ctx, dg, 32<<20); err != nil {
		t.Fatal(err)
	}
	before := b.Requests()
	got, err := b.ReadChunkInto(ctx, dg, 32<<20, alloc)
	if err != nil || string(got) != string(want) || &got[0] != &given[len(given)-1][0] {
		t.Fatalf("from ReadChunk's cached copy: %v", err)
	}
	if b.Requests() != before {
		t.Fatal("a chunk in the bucket's memory was fetched again")
	}
	if _, err := b.ReadChunkInto(ctx, dg, 32<<20, func(int) ([]byte, error) { return nil, errors.New("no memory") }); err == nil {
		t.Fatal("an alloc failure was not returned")
	}
}
