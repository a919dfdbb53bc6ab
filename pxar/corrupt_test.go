package pxar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestBSTOrder(t *testing.T) {
	for n, want := range map[int]string{
		5:  "[3 1 4 0 2]",
		10: "[6 3 8 1 5 7 9 0 2 4]",
		16: "[8 4 12 2 6 10 14 1 3 5 7 9 11 13 15 0]",
		17: "[9 5 13 3 7 11 15 1 4 6 8 10 12 14 16 0 2]",
	} {
		slot := bstOrder(n)
		if got := fmt.Sprint(slot); got != want {
			t.Errorf("bstOrder(%d) = %s, want %s", n, got, want)
		}
		items := make([]goodbyeItem, n)
		for i, s := range slot {
			items[i].hash = uint64(s) * 10
		}
		if _, ok := checkBST(items); !ok {
			t.Errorf("checkBST rejects the §7.1 layout of %d items", n)
		}
		items[0], items[1] = items[1], items[0]
		if _, ok := checkBST(items); ok {
			t.Errorf("checkBST accepts %d items with two slots swapped", n)
		}
	}
}

// listAll opens an archive and lists and reads everything; it returns the
// first error.
func listAll(meta []byte, payload []byte) error {
	var p io.ReaderAt
	if payload != nil {
		p = bytes.NewReader(payload)
	}
	a, err := Open(bytes.NewReader(meta), int64(len(meta)), p, int64(len(payload)), Options{})
	if err != nil {
		return err
	}
	tree, err := treeWalk(a)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for _, w := range tree {
		if w.e.Kind == KindFile {
			for off := int64(0); ; off += int64(len(buf)) {
				_, err := a.ReadAt(w.e, buf, off)
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func wantCorrupt(t *testing.T, what string, err error, reason string) {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Errorf("%s: got %v, want ErrCorrupt (%s)", what, err, reason)
		return
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: got %v, want an error about %q", what, err, reason)
	}
}

// TestMalformedItems builds archives with one defect each.
func TestMalformedItems(t *testing.T) {
	fifo := fifoBody()
	if err := listAll(flatArchive([]rawChild{{name: []byte("ok"), body: fifo}}), nil); err != nil {
		t.Fatalf("the well-formed base archive fails: %v", err)
	}
	bad := uint64(12345)
	xattr := func(n int) []byte { return itemBytes(TypeXattr, append([]byte("user.x\x00"), make([]byte, n)...)) }
	le := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	for _, c := range []struct {
		what   string
		kids   []rawChild
		reason string
	}{
		{"empty name", []rawChild{{name: []byte(""), body: fifo}}, "invalid file name"},
		{"name .", []rawChild{{name: []byte("."), body: fifo}}, "invalid file name"},
		{"name ..", []rawChild{{name: []byte(".."), body: fifo}}, "invalid file name"},
		{"name with /", []rawChild{{name: []byte("a/b"), body: fifo}}, "invalid file name"},
		{"name with NUL", []rawChild{{name: []byte("a\x00b"), body: fifo}}, "contains a NUL"},
		{"name too long", []rawChild{{name: bytes.Repeat([]byte("a"), MaxNameLen+1), body: fifo}}, "at most 4097"},
		{"longest name", []rawChild{{name: bytes.Repeat([]byte("a"), MaxNameLen), body: fifo}}, ""},
		{"xattr too large", []rawChild{{name: []byte("f"), body: append(statBytes(ModeFIFO, 0), xattr(MaxXattrLen)...)}}, "content bytes, at most"},
		{"largest xattr", []rawChild{{name: []byte("f"), body: append(statBytes(ModeFIFO, 0), xattr(MaxXattrLen-7)...)}}, ""},
		{"xattr without name", []rawChild{{name: []byte("f"), body: append(statBytes(ModeFIFO, 0), itemBytes(TypeXattr, []byte("\x00v"))...)}}, "XATTR without a valid name"},
		{"ENTRY too long", []rawChild{{name: []byte("f"), body: itemBytes(TypeEntry, make([]byte, 48))}}, "content bytes, at most 40"},
		{"mode without type", []rawChild{{name: []byte("f"), body: statBytes(0o644, 0)}}, "no valid file type"},
		{"nanoseconds out of range", []rawChild{{name: []byte("f"), body: statBytes(ModeFIFO, 1e9)}}, "nanoseconds"},
		{"regular file without payload", []rawChild{{name: []byte("f"), body: statBytes(ModeRegular|0o644, 0)}}, "no content item"},
		{"payload for a fifo", []rawChild{{name: []byte("f"), body: append(statBytes(ModeFIFO, 0), itemBytes(TypePayload, []byte("x"))...)}}, "PAYLOAD for an entry"},
		{"payload ref in v1", []rawChild{{name: []byte("f"), body: append(statBytes(ModeRegular, 0), itemBytes(TypePayloadRef, le(16, 1))...)}}, "PAYLOAD_REF in a v1"},
		{"symlink without NUL", []rawChild{{name: []byte("f"), body: append(statBytes(ModeSymlink, 0), itemBytes(TypeSymlink, []byte("abc"))...)}}, "not NUL-terminated"},
		{"device of 8 bytes", []rawChild{{name: []byte("f"), body: append(statBytes(ModeChar, 0), itemBytes(TypeDevice, le(1))...)}}, "DEVICE of"},
		{"second GROUP_OBJ", []rawChild{{name: []byte("f"), body: append(append(statBytes(ModeFIFO, 0), itemBytes(TypeACLGroupObj, le(5))...), itemBytes(TypeACLGroupObj, le(5))...)}}, "second ACL_GROUP_OBJ"},
		{"ACL_USER of 24 bytes", []rawChild{{name: []byte("f"), body: append(statBytes(ModeFIFO, 0), itemBytes(TypeACLUser, le(1, 2, 3))...)}}, "content bytes, at most 16"},
		{"unknown item", []rawChild{{name: []byte("f"), body: append(statBytes(ModeFIFO, 0), itemBytes(0x1234, nil)...)}}, "unexpected item"},
		{"hash is not the name's", []rawChild{{name: []byte("f"), body: fifo, hash: &bad}}, "is not the hash of"},
		{"duplicate name", []rawChild{{name: []byte("f"), body: fifo}, {name: []byte("f"), body: fifo}}, "twice"},
		{"hardlink offset 0", []rawChild{{name: []byte("f"), body: itemBytes(TypeHardlink, append(le(0), "f\x00"...))}}, "does not point back"},
		{"hardlink forward", []rawChild{{name: []byte("f"), body: itemBytes(TypeHardlink, append(le(^uint64(0)-5), "f\x00"...))}}, "does not point back"},
	} {
		err := listAll(flatArchive(c.kids), nil)
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
			}
			continue
		}
		wantCorrupt(t, c.what, err, c.reason)
	}
}

// goodbyeItemPos returns the position in meta of dir's goodbye item for
// the child called name.
func goodbyeItemPos(t *testing.T, a *Archive, dir *Entry, name string) uint64 {
	t.Helper()
	st, err := a.openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, GoodbyeItemSize)
	h := HashFilename([]byte(name))
	for i := uint64(0); i < st.n; i++ {
		pos := st.goodbyeStart + HeaderSize + i*GoodbyeItemSize
		if _, err := a.meta.ReadAt(buf, int64(pos)); err != nil {
			t.Fatal(err)
		}
		if le64(buf) == h {
			return pos
		}
	}
	t.Fatalf("no goodbye item for %q", name)
	return 0
}

// TestMalformedFixtures damages the real fixtures in place.
func TestMalformedFixtures(t *testing.T) {
	a, meta := openFixture(t, fixtures[0], Options{})
	root, _ := a.Root()
	rootSt, _ := a.openDir(root)
	find := func(s string) uint64 {
		i := bytes.Index(meta, []byte(s))
		if i < 0 || bytes.Index(meta[i+1:], []byte(s)) >= 0 {
			t.Fatalf("%q not found exactly once", s)
		}
		return uint64(i)
	}
	put := func(b []byte, pos, v uint64) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint64(b[pos:], v)
		return b
	}
	get := func(pos uint64) uint64 { return le64(meta[pos:]) }
	nestedStart := find("nested-hard\x00") - HeaderSize
	linkItem := nestedStart + HeaderSize + uint64(len("nested-hard\x00"))
	hardReadme := find("hard-readme\x00") - HeaderSize
	subStart := find("sub\x00") - HeaderSize
	docsItem := goodbyeItemPos(t, a, root, "docs")
	subItem := goodbyeItemPos(t, a, root, "sub")
	readme, _ := lookupPath(a, "/README.txt")
	readmePayload := readme.data.off - HeaderSize

	for _, c := range []struct {
		what   string
		meta   []byte
		reason string
	}{
		{"goodbye item before the directory body", put(meta, docsItem+8, rootSt.goodbyeStart-root.bodyStart+1), "outside its directory body"},
		{"goodbye item pointing at the goodbye table", put(meta, docsItem+8, 0), "outside its directory body"},
		{"goodbye items swapped", func() []byte {
			b := bytes.Clone(meta)
			p := rootSt.goodbyeStart + HeaderSize
			tmp := bytes.Clone(b[p : p+24])
			copy(b[p:p+24], b[p+24:p+48])
			copy(b[p+24:p+48], tmp)
			return b
		}(), "not a search tree"},
		{"directory claims more than its parent has", put(meta, subItem+16, rootSt.goodbyeStart), "claims"},
		{"directory overlapping its sibling", put(meta, docsItem+16, get(docsItem+16)+1), "overlaps"},
		{"root goodbye tail marker", put(meta, uint64(len(meta))-24, 7), "tail marker missing"},
		{"root goodbye tail offset", put(meta, uint64(len(meta))-16, get(uint64(len(meta))-16)-1), "goodbye tail points"},
		{"root goodbye tail size", put(meta, uint64(len(meta))-8, uint64(len(meta))+40), "does not fit its directory"},
		{"hardlink to a hardlink", put(meta, linkItem+HeaderSize, nestedStart-hardReadme), "hardlink to a hardlink"},
		{"hardlink to a directory", put(meta, linkItem+HeaderSize, nestedStart-subStart), "hardlink to a directory"},
		{"hardlink into the middle of an item", put(meta, linkItem+HeaderSize, nestedStart-subStart-1), "hardlink target"},
		{"hardlink before the root body", put(meta, linkItem+HeaderSize, nestedStart), "does not point back"},
		{"payload longer than its range", put(meta, readmePayload+8, get(readmePayload+8)+1000), "crosses the end of its range"},
	} {
		wantCorrupt(t, c.what, listAll(c.meta, nil), c.reason)
	}

	// A directory's goodbye item pointing elsewhere fails when that
	// directory is opened, not before: the root still lists.
	b := put(meta, subItem+16, get(subItem+16)-1)
	a2, err := Open(bytes.NewReader(b), int64(len(b)), nil, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := a2.Root()
	if _, err := a2.ReadDir(r2); err != nil {
		t.Fatalf("root of an archive with a damaged /sub: %v", err)
	}
	sub, err := a2.Lookup(r2, "sub")
	if err != nil {
		t.Fatal(err)
	}
	_, err = a2.ReadDir(sub)
	wantCorrupt(t, "shortened directory", err, "goodbye")
}

// TestMalformedSplit damages the split fixture's payload stream and
// PAYLOAD_REFs.
func TestMalformedSplit(t *testing.T) {
	meta := readTestdata(t, "pxar-crate-v2.mpxar")
	payload := readTestdata(t, "pxar-crate-v2.ppxar")
	if err := listAll(meta, payload); err != nil {
		t.Fatal(err)
	}
	p := bytes.Clone(payload)
	binary.LittleEndian.PutUint64(p[16+8:], 34) // README's PAYLOAD header claims 18 bytes
	err := listAll(meta, p)
	wantCorrupt(t, "PAYLOAD size differs from PAYLOAD_REF", err, "PAYLOAD_REF of 17 bytes points to PAYLOAD of 34")
	var ce *CorruptError
	if errors.As(err, &ce) && (ce.Stream != streamPayload || ce.Offset != 16) {
		t.Errorf("error names %s offset %d, want payload offset 16", ce.Stream, ce.Offset)
	}
	p = bytes.Clone(payload)
	binary.LittleEndian.PutUint64(p[78:], TypePayloadTailMarker)
	wantCorrupt(t, "PAYLOAD_REF to another item", listAll(meta, p), "points to PAYLOAD_TAIL_MARKER")
	wantCorrupt(t, "payload stream without start marker", listAll(meta, p[16:]), "no payload start marker")
	wantCorrupt(t, "truncated payload stream", listAll(meta, payload[:300000]), "beyond the payload stream")
	// A v2 archive opened without payload lists but does not read.
	a, err := Open(bytes.NewReader(meta), int64(len(meta)), nil, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := lookupPath(a, "/README.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadAt(e, make([]byte, 4), 0); err == nil {
		t.Error("read without payload stream succeeded")
	}
}

// errReaderAt fails reads that touch byte failAt.
type errReaderAt struct {
	r      io.ReaderAt
	failAt int64
	err    error
}

func (e *errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off <= e.failAt && e.failAt < off+int64(len(p)) {
		return 0, e.err
	}
	return e.r.ReadAt(p, off)
}

// TestStreamErrors: a read error of the stream passes through (it is not
// ErrCorrupt); a stream shorter than its size is corrupt.
func TestStreamErrors(t *testing.T) {
	meta := readTestdata(t, "pxar-crate-v1.pxar")
	damaged := errors.New("chunk damaged")
	_, err := Open(&errReaderAt{bytes.NewReader(meta), int64(len(meta)) - 10, damaged}, int64(len(meta)), nil, 0, Options{})
	if !errors.Is(err, damaged) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Open over a failing stream: %v", err)
	}
	_, err = Open(bytes.NewReader(meta), int64(len(meta))+100, nil, 0, Options{})
	wantCorrupt(t, "stream shorter than its size", err, "stream ends early")

	good, _ := openFixture(t, fixtures[0], Options{})
	big, err := lookupPath(good, "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(&errReaderAt{bytes.NewReader(meta), int64(big.data.off) + 100000, damaged}, int64(len(meta)), nil, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := lookupPath(a, "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(a, e, 1<<16); !errors.Is(err, damaged) {
		t.Errorf("reading over a damaged chunk: %v", err)
	}
}

// TestDirCacheKeyedByDirectory: two directory entries claiming the same
// goodbye end (possible only in a crafted archive) do not share a cached
// table; the second is checked on its own and fails.
func TestDirCacheKeyedByDirectory(t *testing.T) {
	a, _ := openFixture(t, fixtures[0], Options{})
	sub, err := lookupPath(a, "/sub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadDir(sub); err != nil {
		t.Fatal(err)
	}
	fake := *sub
	fake.entryStart -= 3
	fake.bodyStart -= 3
	fake.tailRef -= 3
	_, err = a.ReadDir(&fake)
	wantCorrupt(t, "directory sharing another's goodbye end", err, "goodbye tail points")
	_, err = a.Lookup(&fake, "deep")
	wantCorrupt(t, "lookup in it", err, "goodbye tail points")
}

// TestGoodbyeTableTooLarge: a table claiming more children than its
// directory body can hold is refused before anything is allocated for it.
func TestGoodbyeTableTooLarge(t *testing.T) {
	meta := flatArchive([]rawChild{{name: []byte("a"), body: fifoBody()}})
	// Grow the table by 3 bogus items in front of the tail and fix the
	// header and tail sizes.
	gb := len(meta) - HeaderSize - 2*GoodbyeItemSize
	b := append([]byte(nil), meta[:gb]...)
	size := uint64(HeaderSize + 5*GoodbyeItemSize)
	b = append(b, header(TypeGoodbye, size)...)
	b = append(b, meta[gb+HeaderSize:gb+HeaderSize+GoodbyeItemSize]...)
	b = append(b, make([]byte, 3*GoodbyeItemSize)...)
	tail := make([]byte, GoodbyeItemSize)
	binary.LittleEndian.PutUint64(tail, GoodbyeTailMarker)
	binary.LittleEndian.PutUint64(tail[8:], uint64(gb))
	binary.LittleEndian.PutUint64(tail[16:], size)
	b = append(b, tail...)
	_, err := Open(bytes.NewReader(b), int64(len(b)), nil, 0, Options{})
	wantCorrupt(t, "4 children in a body of one", err, "has room for 1")
}

// TestHugeClaimsAllocateLittle puts lying length fields into a virtual
// 1 TiB stream: a PRELUDE, an XATTR, a goodbye table of zeros as large as
// the body allows and a PAYLOAD of 512 GiB. Each is refused or served
// without allocating more than a few MiB.
func TestHugeClaimsAllocateLittle(t *testing.T) {
	const tib = 1 << 40
	measure := func(what string, s *segReader, check func(a *Archive, err error)) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a, err := Open(s, s.size, nil, 0, Options{})
		check(a, err)
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
			t.Errorf("%s: allocated %d bytes", what, d)
		}
	}
	// PRELUDE of 512 GiB.
	s := &segReader{}
	s.add(segment{data: append(header(TypeFormatVersion, 24), le64b(2)...)})
	s.add(segment{data: header(TypePrelude, tib/2)})
	s.add(segment{zeros: tib - s.size})
	measure("prelude", s, func(_ *Archive, err error) { wantCorrupt(t, "huge prelude", err, "PRELUDE of") })

	// Root whose goodbye table of zeros fills a third of the stream.
	root := statBytes(ModeDir|0o755, 0)
	tsize := uint64(HeaderSize + GoodbyeItemSize*(tib/3/GoodbyeItemSize))
	s = &segReader{}
	s.add(segment{data: root})
	s.add(segment{data: itemBytes(TypeFilename, []byte("f\x00"))})
	s.add(segment{data: statBytes(ModeRegular|0o644, 0)})
	fill := tib - int64(tsize) - s.size
	s.add(segment{data: header(TypePayload, uint64(fill))})
	s.add(segment{zeros: fill - HeaderSize})
	gb := uint64(s.size)
	s.add(segment{data: header(TypeGoodbye, tsize)})
	s.add(segment{zeros: int64(tsize) - HeaderSize - GoodbyeItemSize})
	s.add(segment{data: append(append(le64b(GoodbyeTailMarker), le64b(gb)...), le64b(tsize)...)})
	measure("table", s, func(a *Archive, err error) {
		if err != nil {
			t.Fatal(err)
		}
		r, _ := a.Root()
		_, err = a.ReadDir(r)
		wantCorrupt(t, "huge table of zeros", err, "outside its directory body")
		// A lookup reads one slot per tree level (about 35 here).
		if _, err = a.Lookup(r, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup in a huge table of zeros: %v", err)
		}
	})

	// An XATTR claiming 512 GiB, and a file with a 512 GiB PAYLOAD.
	for _, c := range []struct {
		what  string
		items []byte
		check func(a *Archive, e []*Entry, err error)
	}{
		{"xattr", append(statBytes(ModeFIFO, 0), header(TypeXattr, tib/2)...), func(_ *Archive, _ []*Entry, err error) {
			wantCorrupt(t, "huge xattr", err, "content bytes, at most")
		}},
		{"payload", append(statBytes(ModeRegular|0o644, 0), header(TypePayload, tib/2+HeaderSize)...), func(a *Archive, kids []*Entry, err error) {
			if err != nil || len(kids) != 1 || kids[0].Size != tib/2 {
				t.Fatalf("file with a 512 GiB payload: %v %v", kids, err)
			}
			buf := make([]byte, 1<<20)
			if n, err := a.ReadAt(kids[0], buf, tib/2-10); n != 10 || err != io.EOF {
				t.Errorf("read at the end of a 512 GiB file: %d, %v", n, err)
			}
		}},
	} {
		s := &segReader{}
		s.add(segment{data: root})
		fs := uint64(s.size)
		s.add(segment{data: itemBytes(TypeFilename, []byte("f\x00"))})
		s.add(segment{data: c.items})
		s.add(segment{zeros: tib/2 + 1024})
		gb := uint64(s.size)
		s.add(segment{data: header(TypeGoodbye, HeaderSize+2*GoodbyeItemSize)})
		s.add(segment{data: append(append(le64b(HashFilename([]byte("f"))), le64b(gb-fs)...), le64b(gb-fs)...)})
		s.add(segment{data: append(append(le64b(GoodbyeTailMarker), le64b(gb)...), le64b(HeaderSize+2*GoodbyeItemSize)...)})
		measure(c.what, s, func(a *Archive, err error) {
			if err != nil {
				t.Fatal(err)
			}
			r, _ := a.Root()
			kids, err := a.ReadDir(r)
			c.check(a, kids, err)
		})
	}
}

func le64b(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
