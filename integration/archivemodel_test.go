package integration

// The reference model of archive files (shown by default): which archives a
// snapshot shows and what they hold, decoded from the datastore on disk
// with the manifest and index codecs only (the datastore and fs packages
// are not used).

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"pbsfs/index"
	"pbsfs/manifest"
)

// wholeFileLimit: files up to this size are compared whole; larger ones
// (the sample's 4 and 8 GiB sparse disk images) by ranges, so that a test
// reading "every file" stays fast.
const wholeFileLimit = 8 << 20

// archiveModel is one archive file of a snapshot.
type archiveModel struct {
	store     string
	file      string // the archive file, store-relative
	kind      string // "blob", "fidx", "didx"
	encrypted bool
	size      int64 // content size (decoded for blobs)
	fixed     *index.Fixed
	dyn       *index.Dynamic
	blob      []byte
}

// expectedArchives returns the archives the mount shows in the finished,
// readable snapshot snapRel, by shown name: every manifest entry named
// <safe name>.blob, .fidx or .didx (the first of two with the same shown
// name; none shown as notes or manifest.json), and client.log.blob when the
// directory has it. A manifest that does not decode shows none.
func expectedArchives(t *testing.T, store, snapRel string) map[string]*archiveModel {
	t.Helper()
	blob := filepath.Join(store, snapRel, "index.json.blob")
	// Only a regular file: the corrupt-store tests plant FIFOs and
	// symlinks there, and opening a FIFO blocks until a writer comes.
	if fi, err := os.Lstat(blob); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	raw, err := os.ReadFile(blob)
	if err != nil {
		return nil
	}
	m, err := manifest.Load(raw)
	if err != nil {
		return nil
	}
	out := map[string]*archiveModel{}
	files := map[string]bool{}
	for _, f := range m.Files() {
		files[f.Filename] = true
	}
	add := func(file, cryptMode string, size uint64) {
		if file == "index.json.blob" || !safeIDRE.MatchString(file) {
			return
		}
		// pxar archives are directories: NAME.pxar.didx, or NAME.mpxar.didx
		// with its payload stream NAME.ppxar.didx, show as NAME.pxar/.
		for _, suf := range []string{".pxar.didx", ".mpxar.didx"} {
			if name, ok := strings.CutSuffix(file, suf); ok && name != "" {
				if _, dup := out[name+".pxar"]; !dup {
					out[name+".pxar"] = &archiveModel{store: store, file: filepath.Join(snapRel, file), kind: "pxar",
						encrypted: cryptMode == "encrypt"}
				}
				return
			}
		}
		if name, ok := strings.CutSuffix(file, ".ppxar.didx"); ok && files[name+".mpxar.didx"] {
			return
		}
		for _, kind := range []string{"blob", "fidx", "didx"} {
			name, ok := strings.CutSuffix(file, "."+kind)
			if !ok || name == "" || name == "notes" || name == "manifest.json" {
				continue
			}
			if _, dup := out[name]; !dup {
				out[name] = &archiveModel{store: store, file: filepath.Join(snapRel, file), kind: kind,
					encrypted: cryptMode == "encrypt", size: int64(size)}
			}
		}
	}
	for _, f := range m.Files() {
		add(f.Filename, f.CryptMode, f.Size)
	}
	if _, ok := out["client.log"]; !ok && exists(filepath.Join(store, snapRel, "client.log.blob")) {
		add("client.log.blob", "none", 0)
	}
	return out
}

// load reads the index or decodes the blob (once).
func (a *archiveModel) load(t *testing.T) {
	t.Helper()
	if a.fixed != nil || a.dyn != nil || a.blob != nil {
		return
	}
	raw, err := os.ReadFile(filepath.Join(a.store, a.file))
	if err != nil {
		t.Fatal(err)
	}
	switch a.kind {
	case "blob":
		if a.blob, err = manifest.DecodeBlob(raw); err != nil {
			t.Fatalf("%s: %v", a.file, err)
		}
		a.size = int64(len(a.blob))
	case "fidx":
		if a.fixed, err = index.ParseFixed(raw); err != nil {
			t.Fatalf("%s: %v", a.file, err)
		}
	case "didx":
		if a.dyn, err = index.ParseDynamic(raw); err != nil {
			t.Fatalf("%s: %v", a.file, err)
		}
	}
}

// chunk decodes and verifies a chunk from .chunks.
func (a *archiveModel) chunk(t *testing.T, d [32]byte) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(a.store, index.ChunkPath(d)))
	if err != nil {
		t.Fatal(err)
	}
	data, err := manifest.DecodeBlob(raw)
	if err != nil || sha256.Sum256(data) != d {
		t.Fatalf("chunk %x: %v (or digest mismatch)", d, err)
	}
	return data
}

// readAt returns the n bytes at off (fewer at the end).
func (a *archiveModel) readAt(t *testing.T, off, n int64) []byte {
	t.Helper()
	a.load(t)
	n = max(0, min(n, a.size-off))
	if a.blob != nil {
		return bytes.Clone(a.blob[off : off+n])
	}
	out := make([]byte, 0, n)
	for int64(len(out)) < n {
		pos := off + int64(len(out))
		var d [32]byte
		var start int64
		if a.fixed != nil {
			i := pos / int64(a.fixed.ChunkSize)
			d, start = a.fixed.Digests[i], i*int64(a.fixed.ChunkSize)
		} else {
			e := a.dyn.Entries
			i := sort.Search(len(e), func(i int) bool { return int64(e[i].End) > pos })
			d = e[i].Digest
			if i > 0 {
				start = int64(e[i-1].End)
			}
		}
		data := a.chunk(t, d)
		out = append(out, data[pos-start:min(int64(len(data)), pos-start+n-int64(len(out)))]...)
	}
	return out
}

// checkFile compares the mount's file rel with the model; false (with an
// error reported) if it differs. Files up to wholeFileLimit are read whole
// (and the size stat reports must be what is read); larger archives are
// compared by size and by ranges at the start, across the first chunk
// boundary and at the end; encrypted archives (the harness mounts without a
// key) must fail with EACCES, their size still shown.
func checkFile(t *testing.T, m *mount, store, rel string) bool {
	t.Helper()
	dir, name := filepath.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	var a *archiveModel
	if classify(dir) == lvSnapshot {
		a = expectedArchives(t, store, dir)[name]
	}
	fi, err := os.Stat(m.path(rel))
	if err != nil {
		t.Errorf("stat %s: %v", rel, err)
		return false
	}
	switch {
	case a != nil && a.encrypted:
		_, err := os.ReadFile(m.path(rel))
		if errno := errnoOf(err); errno != syscall.EACCES {
			t.Errorf("read encrypted %s without a key: %v, want EACCES", rel, err)
			return false
		}
		if a.kind != "blob" && fi.Size() != a.size {
			t.Errorf("%s: stat size %d, want %d", rel, fi.Size(), a.size)
			return false
		}
		return true
	case a != nil && a.kind != "blob" && a.size > wholeFileLimit:
		if fi.Size() != a.size {
			t.Errorf("%s: stat size %d, want %d", rel, fi.Size(), a.size)
			return false
		}
		a.load(t)
		f, err := os.Open(m.path(rel))
		if err != nil {
			t.Errorf("open %s: %v", rel, err)
			return false
		}
		defer f.Close()
		b := int64(1 << 20)
		if a.fixed != nil {
			b = int64(a.fixed.ChunkSize)
		}
		for _, r := range [][2]int64{{0, 256 << 10}, {b - 5000, 10000}, {a.size - 100000, 200000}} {
			want := a.readAt(t, r[0], r[1])
			got := make([]byte, r[1])
			n, err := f.ReadAt(got, r[0])
			if (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(got[:n], want) {
				t.Errorf("%s: pread(%d, %d) = %d bytes, %v; differs from the model", rel, r[0], r[1], n, err)
				return false
			}
		}
		return true
	}
	want := expectedContent(t, store, rel)
	got, err := os.ReadFile(m.path(rel))
	if err != nil {
		t.Errorf("read %s: %v", rel, err)
		return false
	}
	if fi.Size() != int64(len(got)) {
		t.Errorf("%s: stat size %d, read %d bytes", rel, fi.Size(), len(got))
		return false
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: read\n%.200q\nwant\n%.200q", rel, got, want)
		return false
	}
	return true
}

// readHead returns the first n bytes of the file at p (all of a shorter
// file).
func readHead(p string, n int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}
