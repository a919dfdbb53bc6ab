package pxar

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// TestFixtureTrees decodes every fixture through its goodbye tables and
// compares the listing with the expected tree of pxar-format.md appendix A.
func TestFixtureTrees(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			a, _ := openFixture(t, f, Options{})
			var got []string
			if a.Version() == 2 {
				h := "# format version 2"
				if a.Prelude() != nil {
					h += ", prelude " + quote(string(a.Prelude()))
				}
				got = append(got, h)
			}
			walk, err := treeWalk(a)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range walk {
				got = append(got, formatEntry(w.path, w.e))
			}
			want := strings.Split(strings.TrimRight(string(readTestdata(t, f.name+".tree")), "\n"), "\n")
			for i := 0; i < max(len(got), len(want)); i++ {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Errorf("line %d:\n got  %s\n want %s", i+1, g, w)
				}
			}
		})
	}
}

// TestLookupEqualsSequentialWalk decodes each fixture sequentially and
// checks that every path looked up through the goodbye tables (on an
// archive that never listed a directory) and every listed entry equal the
// sequentially decoded ones, and that missing names are not found.
func TestLookupEqualsSequentialWalk(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			a, _ := openFixture(t, f, Options{})
			seq, err := seqWalk(a)
			if err != nil {
				t.Fatal(err)
			}
			fresh, _ := openFixture(t, f, Options{DirCacheSize: 2})
			for _, w := range seq {
				e, err := lookupPath(fresh, w.path)
				if err != nil {
					t.Fatalf("lookup %s: %v", w.path, err)
				}
				if !reflect.DeepEqual(e, w.e) {
					t.Errorf("lookup %s:\n got  %+v\n want %+v", w.path, e, w.e)
				}
			}
			tree, err := treeWalk(a)
			if err != nil {
				t.Fatal(err)
			}
			if len(tree) != len(seq) {
				t.Fatalf("listing has %d entries, sequential walk %d", len(tree), len(seq))
			}
			for i := range tree {
				if tree[i].path != seq[i].path || !reflect.DeepEqual(tree[i].e, seq[i].e) {
					t.Errorf("entry %d: listed %s %+v, sequential %s %+v", i, tree[i].path, tree[i].e, seq[i].path, seq[i].e)
				}
			}
			// Every path again through the cached listings.
			for _, w := range seq {
				if e, err := lookupPath(a, w.path); err != nil || e.ID != w.e.ID || e.Name != w.e.Name {
					t.Errorf("cached lookup %s: %v, %v", w.path, e, err)
				}
			}
			for _, arch := range []*Archive{fresh, a} {
				root, _ := arch.Root()
				for _, name := range []string{"nope", "README.TXT", "file_10", ".", "..", "", "a/b", "folder_0/file_0", "x\x00"} {
					e, err := arch.Lookup(root, name)
					if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("Lookup(/, %q) = %v, %v; want ErrNotFound", name, e, err)
					}
				}
			}
		})
	}
}

// TestIDs: IDs are unique per archived entry and never 0; a hardlink has
// its target's ID and the target's content.
func TestIDs(t *testing.T) {
	for _, f := range fixtures[:2] {
		t.Run(f.name, func(t *testing.T) {
			a, _ := openFixture(t, f, Options{})
			tree, err := treeWalk(a)
			if err != nil {
				t.Fatal(err)
			}
			byID := map[uint64]string{}
			links := 0
			for _, w := range tree {
				if w.e.ID == 0 {
					t.Errorf("%s has ID 0", w.path)
				}
				if w.e.Hardlink {
					continue
				}
				if p, ok := byID[w.e.ID]; ok {
					t.Errorf("%s and %s share ID %d", p, w.path, w.e.ID)
				}
				byID[w.e.ID] = w.path
			}
			for _, w := range tree {
				if !w.e.Hardlink {
					continue
				}
				links++
				target, err := lookupPath(a, "/"+w.e.HardlinkPath)
				if err != nil {
					t.Fatal(err)
				}
				if w.e.ID != target.ID || byID[w.e.ID] != "/"+w.e.HardlinkPath {
					t.Errorf("hardlink %s: ID %d, target %s has %d", w.path, w.e.ID, w.e.HardlinkPath, target.ID)
				}
				if w.e.Kind != KindFile || w.e.Size != target.Size || w.e.Mode != target.Mode || w.e.MtimeSec != target.MtimeSec {
					t.Errorf("hardlink %s does not carry its target's metadata: %+v vs %+v", w.path, w.e, target)
				}
				got, err1 := readAll(a, w.e, 5)
				want, err2 := readAll(a, target, 1<<10)
				if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
					t.Errorf("hardlink %s reads %q (%v), target %q (%v)", w.path, got, err1, want, err2)
				}
			}
			if links != 2 {
				t.Errorf("found %d hardlinks, the fixture has 2", links)
			}
		})
	}
}

// TestFileContents reads every file of the pxar-crate fixtures in several
// buffer sizes: v1 and v2 must give the same bytes, the v1 bytes must be
// the PAYLOAD content, and known files their known content.
func TestFileContents(t *testing.T) {
	v1, meta := openFixture(t, fixtures[0], Options{})
	v2, _ := openFixture(t, fixtures[1], Options{})
	seq, err := seqWalk(v1)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, w := range seq {
		if w.e.Kind != KindFile {
			continue
		}
		files++
		raw := meta[w.e.data.off : w.e.data.off+w.e.Size]
		e2, err := lookupPath(v2, w.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, bs := range []int{1, 7, 4096, 128 << 10} {
			for _, c := range []struct {
				a *Archive
				e *Entry
			}{{v1, w.e}, {v2, e2}} {
				got, err := readAll(c.a, c.e, bs)
				if err != nil || !bytes.Equal(got, raw) {
					t.Errorf("%s v%d buffer %d: %d bytes, %v; want %d bytes", w.path, c.a.Version(), bs, len(got), err, len(raw))
				}
			}
		}
	}
	if files != 31 {
		t.Errorf("read %d files, the fixture has 31 (hardlinks included)", files)
	}
	for path, want := range map[string]string{"/README.txt": "Hello from pxar!\n", "/acl-dir/inner.txt": "inner\n", "/empty": ""} {
		for _, a := range []*Archive{v1, v2} {
			e, err := lookupPath(a, path)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(a, e, 3); err != nil || string(got) != want {
				t.Errorf("v%d %s = %q, %v; want %q", a.Version(), path, got, err, want)
			}
		}
	}
}

// TestReadAtSemantics: io.EOF like os.File, reads past the end, negative
// offsets, non-files.
func TestReadAtSemantics(t *testing.T) {
	a, _ := openFixture(t, fixtures[0], Options{})
	e, err := lookupPath(a, "/README.txt")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := a.ReadAt(e, buf, 0); n != 10 || err != nil {
		t.Errorf("ReadAt(0) = %d, %v", n, err)
	}
	if n, err := a.ReadAt(e, buf, 10); n != 7 || err != io.EOF || string(buf[:n]) != " pxar!\n" {
		t.Errorf("ReadAt(10) = %d %q, %v; want 7, EOF", n, buf[:n], err)
	}
	if n, err := a.ReadAt(e, buf, 17); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(17) = %d, %v", n, err)
	}
	if n, err := a.ReadAt(e, buf, 1<<40); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(1<<40) = %d, %v", n, err)
	}
	if _, err := a.ReadAt(e, buf, -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
	if n, err := a.ReadAt(e, nil, 3); n != 0 || err != nil {
		t.Errorf("ReadAt(empty buffer) = %d, %v", n, err)
	}
	root, _ := a.Root()
	if _, err := a.ReadAt(root, buf, 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadAt(dir) = %v", err)
	}
	if _, err := a.ReadDir(e); !errors.Is(err, ErrNotDir) {
		t.Errorf("ReadDir(file) = %v", err)
	}
	if _, err := a.Lookup(e, "x"); !errors.Is(err, ErrNotDir) {
		t.Errorf("Lookup(file) = %v", err)
	}
}

// TestSplitPayloadStreams checks the rebuilt payload stream of the real
// split fixtures against SOURCE.txt's sha256, then reads the files of both
// real metadata archives from it: every PAYLOAD_REF must meet its PAYLOAD
// header (offsets +16 in the re-use archive) and every file read 1 MiB of
// zeros.
func TestSplitPayloadStreams(t *testing.T) {
	s := dataPayload(false)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(s, 0, s.size)); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dataPayloadSHA256 || s.size != 104859232 {
		t.Fatalf("rebuilt payload stream: %d bytes, sha256 %s; SOURCE.txt says 104859232, %s", s.size, got, dataPayloadSHA256)
	}
	zeros := make([]byte, 1<<20)
	for _, f := range fixtures[2:] {
		t.Run(f.name, func(t *testing.T) {
			a, _ := openFixture(t, f, Options{})
			tree, err := treeWalk(a)
			if err != nil {
				t.Fatal(err)
			}
			files := 0
			buf := make([]byte, 1<<20+1)
			for _, w := range tree {
				if w.e.Kind != KindFile {
					continue
				}
				files++
				n, err := a.ReadAt(w.e, buf, 0)
				if n != 1<<20 || err != io.EOF || !bytes.Equal(buf[:n], zeros) {
					t.Errorf("%s: read %d bytes, %v", w.path, n, err)
				}
			}
			if files != 100 {
				t.Errorf("%d files, want 100", files)
			}
		})
	}
}

// TestEntryV1 decodes a child written with the pre-1.0 ENTRY_V1 item
// (mtime as unsigned nanoseconds, §5.3).
func TestEntryV1(t *testing.T) {
	st := make([]byte, StatV1Size)
	binary.LittleEndian.PutUint64(st, ModeFIFO|0o600)
	binary.LittleEndian.PutUint32(st[16:], 7)
	binary.LittleEndian.PutUint32(st[20:], 8)
	binary.LittleEndian.PutUint64(st[24:], 1715000000_123456789)
	meta := flatArchive([]rawChild{{name: []byte("old"), body: itemBytes(TypeEntryV1, st)}})
	a, err := Open(bytes.NewReader(meta), int64(len(meta)), nil, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := a.Root()
	e, err := a.Lookup(root, "old")
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != KindFIFO || e.Mode != ModeFIFO|0o600 || e.UID != 7 || e.GID != 8 || e.MtimeSec != 1715000000 || e.MtimeNsec != 123456789 {
		t.Errorf("ENTRY_V1 decoded as %+v", e)
	}
}
