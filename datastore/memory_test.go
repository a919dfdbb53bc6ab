package datastore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// readChars is what this process has read through read(2) and the like so
// far (rchar of /proc/self/io).
func readChars(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	must(t, err)
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			must(t, err)
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// TestCorruptManifestRemembered: a manifest that does not decode is read
// once per identity, not at every stat; once it changes it is read again.
func TestCorruptManifestRemembered(t *testing.T) {
	s := newStore(t, lock.Run)
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "x")
	p := filepath.Join(s.Path(), sn.Dir(), ManifestName)
	const size = 4 << 20
	bad := append([]byte("not a blob"), make([]byte, size)...)
	must(t, os.WriteFile(p, bad, 0o644))

	before := readChars(t)
	_, _, err := s.Manifest(sn)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt manifest: %v", err)
	}
	first := readChars(t) - before
	for range 10 {
		if _, _, err2 := s.Manifest(sn); !errors.Is(err2, ErrCorrupt) || err2.Error() != err.Error() {
			t.Fatalf("again: %v, want %v", err2, err)
		}
	}
	again := readChars(t) - before - first
	t.Logf("first load read %d bytes, ten more loads %d", first, again)
	if first < size || again >= size {
		t.Errorf("the corrupt manifest was read again (first %d bytes, then %d)", first, again)
	}
	// Repaired: read again at once.
	addSnapshotFile(t, s, sn)
	if _, _, err := s.Manifest(sn); err != nil {
		t.Errorf("repaired manifest: %v", err)
	}
}

// addSnapshotFile writes a good manifest over a broken one.
func addSnapshotFile(t *testing.T, s *Store, sn Snapshot) {
	t.Helper()
	m, err := manifest.New(sn.Group.Type, sn.Group.ID, 1717597321, nil)
	must(t, err)
	raw, err := m.EncodeBlob()
	must(t, err)
	must(t, os.WriteFile(filepath.Join(s.Path(), sn.Dir(), ManifestName), raw, 0o644))
}

// TestDecodeBudgetStore: with a decode budget smaller than what a crafted
// frame may decode to, the manifest, blob archive and chunk holding it fail
// as ErrIO (not corrupt: nothing was decoded), and the manifest is not
// remembered as corrupt; good files still read.
func TestDecodeBudgetStore(t *testing.T) {
	base := filepath.Join(t.TempDir(), "store")
	must(t, Create(base, CreateOptions{}))
	s, err := Open(base, Options{
		Lock:         lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: "test", UID: -1, GID: -1},
		Archives:     ArchiveOptions{Enabled: true, CacheBytes: -1}, // every read decodes
		DecodeBudget: 8 << 20,
	})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	d := writeArchives(t, s, "100", nil)
	checkContent(t, s, d)

	evil := testsupport.BombBlob(1024, false) // may decode to 128 MiB
	// A chunk of the stream.
	a, err := s.OpenArchive(d.sn, "root.pxar")
	must(t, err)
	must(t, os.WriteFile(chunkFile(t, s, a, 5000), evil, 0o644))
	if _, err := view(a, 5000, 10); !errors.Is(err, ErrIO) || errors.Is(err, ErrCorrupt) || !errors.Is(err, manifest.ErrNoMemory) {
		t.Errorf("chunk over the budget: %v, want ErrIO from ErrNoMemory", err)
	}
	// A manifest.
	sn := snap(nil, "vm", "101", testTime)
	must(t, s.CreateGroup(sn.Group, "root@pam"))
	must(t, s.MakeSnapshotDir(sn))
	must(t, os.WriteFile(filepath.Join(base, sn.Dir(), ManifestName), evil, 0o644))
	for i := range 2 {
		if _, _, err := s.Manifest(sn); !errors.Is(err, ErrIO) || errors.Is(err, ErrCorrupt) {
			t.Errorf("manifest over the budget (%d): %v, want ErrIO", i, err)
		}
	}
	// A blob archive.
	sn2 := snap(nil, "vm", "102", testTime)
	must(t, s.CreateGroup(sn2.Group, "root@pam"))
	bi := manifest.FileInfo{Filename: "evil.conf.blob", CryptMode: "none", Size: uint64(len(evil)), Csum: fmt.Sprintf("%x", sha256.Sum256(evil))}
	m, err := manifest.New("vm", "102", 1717597321, []manifest.FileInfo{bi})
	must(t, err)
	must(t, s.WriteSnapshot(sn2, m, map[string][]byte{bi.Filename: evil}))
	if _, err := s.OpenArchive(sn2, "evil.conf"); !errors.Is(err, ErrIO) || errors.Is(err, ErrCorrupt) {
		t.Errorf("blob over the budget: %v, want ErrIO", err)
	}
	// The budget was given back: good data still decodes.
	if v, err := view(a, 0, 5000); err != nil || !bytes.Equal(v, d.stream[:5000]) {
		t.Errorf("good chunk after refused decodes: %v", err)
	}
}

// TestBlobCacheBound: decoded blob archives are kept within
// BlobCacheBytes, not for as long as their archive is open; one that was
// dropped is read and decoded again, from the same file only.
func TestBlobCacheBound(t *testing.T) {
	const blobSize = 100 << 10
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true, BlobCacheBytes: 2*blobSize + blobSize/2})
	sn := snap(nil, "vm", "100", testTime)
	must(t, s.CreateGroup(sn.Group, "root@pam"))
	var infos []manifest.FileInfo
	files := map[string][]byte{}
	contents := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("b%d.log", i)
		data := bytes.Repeat([]byte{byte('a' + i)}, blobSize)
		fi, raw, err := BuildBlob(name+".blob", data, nil)
		must(t, err)
		infos = append(infos, fi)
		files[fi.Filename] = raw
		contents[name] = data
	}
	m, err := manifest.New("vm", "100", 1717597321, infos)
	must(t, err)
	must(t, s.WriteSnapshot(sn, m, files))

	var open []*Archive
	for i := range 5 {
		a, err := s.OpenArchive(sn, fmt.Sprintf("b%d.log", i))
		must(t, err)
		if a.Size() != blobSize {
			t.Fatalf("size %d", a.Size())
		}
		open = append(open, a)
	}
	n, held := s.arch.blobs.stats()
	t.Logf("5 open blob archives of %d KiB: %d kept, %d KiB", blobSize>>10, n, held>>10)
	if held > 2*blobSize+blobSize/2 || n != 2 {
		t.Errorf("blob cache holds %d blobs, %d bytes; want 2 within the bound", n, held)
	}
	for i, a := range open {
		v, err := view(a, 0, blobSize)
		if err != nil || !bytes.Equal(v, contents[fmt.Sprintf("b%d.log", i)]) {
			t.Errorf("b%d after eviction: %v", i, err)
		}
	}
	// Replaced since it was opened (and dropped from the cache): stale.
	p := filepath.Join(s.Path(), sn.Dir(), "b0.log.blob")
	must(t, os.Rename(p, p+".old"))
	raw, _ := os.ReadFile(p + ".old")
	must(t, os.WriteFile(p, raw, 0o644))
	time.Sleep(10 * time.Millisecond)
	for i := 1; i < 5; i++ {
		view(open[i], 0, 1) // push b0 out
	}
	if _, err := view(open[0], 0, 1); !errors.Is(err, ErrStale) {
		t.Errorf("read of a replaced blob: %v, want ErrStale", err)
	}
}
