package integration

// Faults of a bucket datastore's endpoint, through a real FUSE mount of a
// real S3 server (issue 17): the server stopped or frozen during a walk and
// during an archive read, slow answers, a missing chunk object. Every
// failing system call must end in EIO within the mount's --s3-timeout
// (retries included) rather than hang; the mount stays up and serves again
// once the server is back.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/index"
	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/s3store"
	"pbsfs/s3store/s3test"
)

// faultTimeout is the mounts' --s3-timeout: short, so that the tests are.
const faultTimeout = 2 * time.Second

// faultBound is how long a failing system call may take before the test
// calls it hung: the timeout is per request (a lookup may make a listing
// and a GET, each with its retries), and the machine is loaded. Generous:
// the point is that the call returns at all.
var faultBound = scaled(45 * time.Second)

// s3Faults is a store of two disk images, uploaded once to bucket
// s3SampleBucket as datastore "faults": vm/100 of faultChunks distinct
// 4 MiB chunks (read chunk by chunk), vm/101 of two.
var s3Faults struct {
	once       sync.Once
	dir        string
	big, small []byte
	bigIdx     *index.Fixed
	err        error
}

const (
	faultStore  = "faults"
	faultChunks = 16
)

var (
	faultSource = "s3://" + s3SampleBucket + "/" + faultStore
	faultBigRel = "vm/100/" + demo.ImageSnapshotTime + "/drive-scsi0.img"
	faultSmlRel = "vm/101/" + demo.ImageSnapshotTime + "/drive-scsi0.img"
)

// faultStoreDir writes and uploads the fault store once (next to the
// sample store, and removed with it) and returns its local directory.
func faultStoreDir(t *testing.T) string {
	t.Helper()
	sample := s3SampleStoreDir(t)
	s := s3srv.Need(t)
	s3Faults.once.Do(func() {
		dir := filepath.Join(filepath.Dir(sample), faultStore)
		if err := datastore.Create(dir, datastore.CreateOptions{}); err != nil {
			s3Faults.err = err
			return
		}
		st, err := datastore.Open(dir, datastore.Options{Lock: lock.Config{Scheme: lock.Run,
			Dir: filepath.Join(filepath.Dir(sample), "faults-locks"), Store: faultStore, UID: -1, GID: -1}})
		if err != nil {
			s3Faults.err = err
			return
		}
		defer st.Close()
		if s3Faults.bigIdx, s3Faults.big, err = demo.WriteImageSnapshot(st, "100", faultChunks); err != nil {
			s3Faults.err = err
			return
		}
		if _, s3Faults.small, err = demo.WriteImageSnapshot(st, "101", 2); err != nil {
			s3Faults.err = err
			return
		}
		s3Faults.dir = dir
		s3Faults.err = uploadStore(s, dir, s3SampleBucket, faultStore)
	})
	if s3Faults.err != nil {
		t.Fatalf("fault store: %v", s3Faults.err)
	}
	return s3Faults.dir
}

// inTime runs fn and fails the test when it has not returned within
// faultBound (a hung system call). It returns how long fn took and its
// error.
func inTime(t *testing.T, what string, fn func() error) (time.Duration, error) {
	t.Helper()
	return testsupport.Within(t, fmt.Sprintf("%s (--s3-timeout %v)", what, faultTimeout), faultBound, fn)
}

// wantEIO runs fn in time and checks that it failed with EIO.
func wantEIO(t *testing.T, what string, fn func() error) {
	t.Helper()
	d, err := inTime(t, what, fn)
	wantErrno(t, what, err, syscall.EIO)
	t.Logf("%s: %v after %v", what, err, d.Round(time.Millisecond))
}

// walkTree lstats every entry below dir (`ls -lR`) and returns how many.
func walkTree(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// readChunkAt reads the i-th 4 MiB chunk's range of the image at p through
// a fresh open and checks it against want.
func readChunkAt(p string, i int, want []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, demo.ImageChunk)
	off := int64(i) * demo.ImageChunk
	n, err := f.ReadAt(buf, off)
	if err != nil && n != len(buf) {
		return err
	}
	if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
		return fmt.Errorf("%s: chunk %d reads back other bytes", p, i)
	}
	return nil
}

// readWhole reads the file at p and checks it against want.
func readWhole(p string, want []byte) error {
	got, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: %d bytes read back differ from the %d written", p, len(got), len(want))
	}
	return nil
}

// stillUp checks that pbsfs still runs and its mountpoint is a FUSE mount.
func stillUp(t *testing.T, m *mount) {
	t.Helper()
	select {
	case <-m.done:
		t.Fatalf("pbsfs exited: %v\n%s", m.waitErr, m.stderr)
	default:
	}
	if !isMounted(m.dir) {
		t.Fatalf("%s is no longer mounted", m.dir)
	}
}

// recovered checks that the whole tree walks and both images read back
// in full once the server answers again. A listing sent while the server
// was down or slow is shared by the callers that ask for the same
// directory until it ends, so a walk right after the recovery may still
// see that request fail, within its --s3-timeout: the walk is retried
// until it succeeds, for at most faultBound.
func recovered(t *testing.T, m *mount, entries int) {
	t.Helper()
	start := time.Now()
	for {
		n, err := walkTree(m.dir)
		if err == nil && n == entries {
			t.Logf("walk after recovery: complete after %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if err == nil || !errors.Is(err, syscall.EIO) || time.Since(start) > faultBound {
			t.Errorf("walk after recovery (%v): %d entries (want %d), %v", time.Since(start).Round(time.Millisecond), n, entries, err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := readWhole(m.path(faultBigRel), s3Faults.big); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if err := readWhole(m.path(faultSmlRel), s3Faults.small); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

// waitServes waits until the server serves objects again after a restart
// or a thaw (its S3 port answers before its volumes are back), reading a
// chunk of the fault store with a fresh client each time.
func waitServes(t *testing.T, s *s3test.Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := s3store.New(s3Endpoint(s), s3store.Location{Bucket: s3SampleBucket, Store: faultStore},
			s3store.Options{Timeout: 5 * time.Second, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.ReadChunk(context.Background(), s3Faults.bigIdx.Digests[0], 64<<20)
		b.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not serve objects 2 minutes after coming back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// localEntries is how many entries a walk of the fault store shows (a
// local read-only mount of the same store).
func localEntries(t *testing.T, local string) int {
	t.Helper()
	lm := startMount(t, local, "--read-only")
	n, err := walkTree(lm.dir)
	if err != nil {
		t.Fatal(err)
	}
	lm.stop()
	return n
}

// TestS3FaultServerStopped: the server stops during a walk and during an
// archive read (a file open, its first chunk read): the walk and the read
// of a chunk not fetched yet fail with EIO within the timeout, the mount
// stays up, and once the server is back the whole tree and both images
// read correctly — failures are not remembered.
func TestS3FaultServerStopped(t *testing.T) {
	s := s3srv.Need(t)
	serverOutage(t, "stopped", s.Stop, s.Start)
}

// TestS3FaultServerFrozen: as TestS3FaultServerStopped with a server that
// accepts connections and never answers (SIGSTOP): only the timeout ends
// the requests.
func TestS3FaultServerFrozen(t *testing.T) {
	s := s3srv.Need(t)
	serverOutage(t, "frozen", s.Freeze, func() error {
		s.Thaw()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return s.Ready(ctx)
	})
}

// serverOutage is the walk, lookup and archive read of a bucket mount
// while the server is down (down), EIO each within the timeout, then the
// mount serving everything again once the server is back (up).
func serverOutage(t *testing.T, what string, down func(), up func() error) {
	local := faultStoreDir(t)
	entries := localEntries(t, local)
	s := s3srv.Need(t)
	m := startS3Mount(t, local, faultSource, "--s3-timeout", faultTimeout.String())
	t.Cleanup(func() { _ = up() }) // before the mount's cleanup, should the test fail early

	f, err := os.Open(m.path(faultBigRel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := readChunkAt(m.path(faultBigRel), 0, s3Faults.big); err != nil {
		t.Fatal(err)
	}

	down()
	wantEIO(t, "walk with the server "+what, func() error { _, err := walkTree(m.dir); return err })
	wantEIO(t, "lookup of an archive not seen yet, server "+what, func() error { _, err := os.Stat(m.path(faultSmlRel)); return err })
	wantEIO(t, "archive read with the server "+what, func() error {
		_, err := f.ReadAt(make([]byte, 64<<10), (faultChunks-1)*demo.ImageChunk)
		return err
	})
	stillUp(t, m)

	if err := up(); err != nil {
		t.Fatalf("server %s, back: %v", what, err)
	}
	waitServes(t, s)
	if _, err := f.ReadAt(make([]byte, 64<<10), (faultChunks-1)*demo.ImageChunk); err != nil {
		t.Errorf("the open file after the server is back: %v", err)
	}
	f.Close()
	recovered(t, m, entries)
	m.stop()
}

// TestS3FaultSlowResponses: every answer 300 ms late (a proxy in front of
// the server), well under the timeout: the walk and both images read
// correctly. Then answers later than the timeout: EIO in time; and when
// the answers come in time again, the mount serves again.
func TestS3FaultSlowResponses(t *testing.T) {
	local := faultStoreDir(t)
	entries := localEntries(t, local)
	s := s3srv.Need(t)
	p, err := s3test.NewProxy(s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.Delay(300 * time.Millisecond)
	// The later --s3-endpoint wins: the mount talks to the proxy.
	m := startS3Mount(t, local, faultSource, "--s3-endpoint", p.Endpoint(), "--s3-timeout", (4 * faultTimeout).String())

	n, err := walkTree(m.dir)
	if err != nil || n != entries {
		t.Errorf("walk with slow answers: %d entries (want %d), %v", n, entries, err)
	}
	if err := readWhole(m.path(faultSmlRel), s3Faults.small); err != nil {
		t.Errorf("slow answers: %v", err)
	}
	if err := readChunkAt(m.path(faultBigRel), 0, s3Faults.big); err != nil {
		t.Errorf("slow answers: %v", err)
	}
	if p.Requests() < 5 {
		t.Errorf("the proxy saw %d requests: the mount did not go through it", p.Requests())
	}
	t.Logf("%d requests, each 300 ms late", p.Requests())

	p.Delay(time.Hour)
	wantEIO(t, "archive read with answers later than the timeout", func() error {
		return readChunkAt(m.path(faultBigRel), faultChunks-1, s3Faults.big)
	})
	stillUp(t, m)
	if err := p.Pass(); err != nil {
		t.Fatal(err)
	}
	recovered(t, m, entries)
	m.stop()
}

// TestS3FaultMissingChunk: a chunk object missing from the bucket makes
// the reads of its range of the archive fail with EIO and a log line that
// names the chunk; the archive's other chunks, the other archive and the
// snapshot's other files read correctly.
func TestS3FaultMissingChunk(t *testing.T) {
	local := faultStoreDir(t)
	s := s3srv.Need(t)
	// A chunk in the middle that occurs once in the image.
	const k = faultChunks / 2
	dg := s3Faults.bigIdx.Digests[k]
	for i, d := range s3Faults.bigIdx.Digests {
		if d == dg && i != k {
			t.Fatalf("chunk %d of the image also is chunk %d", k, i)
		}
	}
	digest := hex.EncodeToString(dg[:])
	w, err := s3store.New(s3Endpoint(s), s3store.Location{Bucket: s3SampleBucket, Store: faultStore}, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	key := ".chunks/" + digest[:4] + "/" + digest
	if err := w.Remove(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		data, err := os.ReadFile(filepath.Join(local, index.ChunkPath(dg)))
		if err == nil {
			err = w.Put(context.Background(), key, data)
		}
		if err != nil {
			t.Errorf("putting the chunk back: %v", err)
		}
	})

	m := startS3Mount(t, local, faultSource, "--s3-timeout", faultTimeout.String())
	wantEIO(t, "read of the missing chunk's range", func() error { return readChunkAt(m.path(faultBigRel), k, s3Faults.big) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(m.stderr.String(), digest) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(m.stderr.String(), digest) {
		t.Errorf("no log line names the missing chunk %s:\n%s", digest, m.stderr)
	}
	for _, i := range []int{0, k - 1, k + 1, faultChunks - 1} {
		if err := readChunkAt(m.path(faultBigRel), i, s3Faults.big); err != nil {
			t.Errorf("chunk %d of the same image: %v", i, err)
		}
	}
	if err := readWhole(m.path(faultSmlRel), s3Faults.small); err != nil {
		t.Errorf("the other image: %v", err)
	}
	if _, err := os.ReadFile(m.path(filepath.Dir(faultBigRel), "manifest.json")); err != nil {
		t.Errorf("the snapshot's manifest.json: %v", err)
	}
	stillUp(t, m)
	m.stop()
}
