package fs

import (
	"bytes"
	"os"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
	"golang.org/x/sys/unix"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// The kernel's 32-bit device encoding, against x/sys/unix's 64-bit one
// (equal in the low 32 bits while major < 4096 and minor < 2^20).
func TestEncodeDev(t *testing.T) {
	for _, d := range [][2]uint64{{0, 0}, {1, 3}, {8, 1}, {8, 255}, {8, 256}, {250, 70000}, {4095, 1<<20 - 1}} {
		if got, want := encodeDev(d[0], d[1]), uint32(unix.Mkdev(uint32(d[0]), uint32(d[1]))); got != want {
			t.Errorf("encodeDev(%d, %d) = %#x, want %#x", d[0], d[1], got, want)
		}
	}
}

func TestPxarMode(t *testing.T) {
	for _, tc := range []struct {
		kind pxar.Kind
		mode uint64
		want os.FileMode
	}{
		{pxar.KindFile, 0o100644, 0o644},
		{pxar.KindFile, 0o104755, 0o755 | os.ModeSetuid},
		{pxar.KindDir, 0o042775, 0o775 | os.ModeDir | os.ModeSetgid},
		{pxar.KindDir, 0o041777, 0o777 | os.ModeDir | os.ModeSticky},
		{pxar.KindSymlink, 0o120777, 0o777 | os.ModeSymlink},
		{pxar.KindBlockDev, 0o060660, 0o660 | os.ModeDevice},
		{pxar.KindCharDev, 0o020666, 0o666 | os.ModeDevice | os.ModeCharDevice},
		{pxar.KindFIFO, 0o010644, 0o644 | os.ModeNamedPipe},
		{pxar.KindSocket, 0o140755, 0o755 | os.ModeSocket},
	} {
		if got := pxarMode(tc.kind, uint16(tc.mode)); got != tc.want {
			t.Errorf("%v %o: %v, want %v", tc.kind, tc.mode, got, tc.want)
		}
	}
}

// Inode numbers: distinct for the IDs of one archive and for the same ID
// in two archives, equal for equal (archive, ID), never 0 or 1; the root
// keeps its path's number.
func TestPxarInodes(t *testing.T) {
	a := newPxarTree(nil, "ct/200/2024-06-01T01:30:00Z/root.pxar", 77, "root.pxar.didx", "abc")
	b := newPxarTree(nil, "ct/201/2024-06-01T01:30:00Z/root.pxar", 78, "root.pxar.didx", "abc")
	a2 := newPxarTree(nil, "ct/200/2024-06-01T01:30:00Z/root.pxar", 77, "root.pxar.didx", "abc")
	seen := map[uint64]string{}
	for id := uint64(1); id < 200000; id += 7 {
		for name, tr := range map[string]*pxarTree{"a": a, "b": b} {
			ino := tr.inoOf(&pxar.Entry{ID: id}, false)
			if ino < 2 {
				t.Fatalf("inode %d", ino)
			}
			if other, dup := seen[ino]; dup {
				t.Fatalf("%s/%d and %s share inode %d", name, id, other, ino)
			}
			seen[ino] = name
		}
		if a.inoOf(&pxar.Entry{ID: id}, false) != a2.inoOf(&pxar.Entry{ID: id}, false) {
			t.Fatal("the same archive gives other numbers")
		}
	}
	if a.inoOf(&pxar.Entry{ID: 1}, true) != 77 {
		t.Error("the root does not keep its path's inode")
	}
}

// A lookup of an archived file, symlink or device gives a value equal to
// what an earlier lookup of the name gave (bazil keys node IDs by the Node
// value: the kernel gets the node ID it has, not a new one per lookup);
// its attributes are the ones the lookup answers. Directories are the
// cached node.
func TestPxarLookupGivesEqualNodes(t *testing.T) {
	e := newEnv(t)
	file := &encoder.Node{Name: "f", Mode: pxar.ModeRegular | 0o640, UID: 7, MtimeSec: 1700000000, Data: []byte("data")}
	link := &encoder.Node{Name: "l", Mode: pxar.ModeSymlink | 0o777, Symlink: "f"}
	fifo := &encoder.Node{Name: "p", Mode: pxar.ModeFIFO | 0o600}
	sub := &encoder.Node{Name: "d", Mode: pxar.ModeDir | 0o755}
	var buf bytes.Buffer
	if err := encoder.WriteV1(&buf, &encoder.Node{Mode: pxar.ModeDir | 0o755, Children: []*encoder.Node{file, link, fifo, sub}}); err != nil {
		t.Fatal(err)
	}
	arch, err := pxar.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil, 0, pxar.Options{DirCacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := arch.Root()
	tree := newPxarTree(arch, "ct/1/2024-01-01T00:00:00Z/root.pxar", 99, "root.pxar.didx")
	dir := newPxarDir(e.fs, "ct/1/2024-01-01T00:00:00Z/root.pxar", nil, 98, tree, root, false)
	for _, name := range []string{"f", "l", "p", "d"} {
		var nodes []fusefs.Node
		for range 2 {
			var resp fuse.LookupResponse
			n, err := dir.Lookup(e.ctx, &fuse.LookupRequest{Name: name}, &resp)
			if err != nil {
				t.Fatalf("lookup %s: %v", name, err)
			}
			var a fuse.Attr
			if err := n.Attr(e.ctx, &a); err != nil || a != resp.Attr {
				t.Errorf("%s: Attr %+v (%v), the lookup answered %+v", name, a, err, resp.Attr)
			}
			nodes = append(nodes, n)
			// Another listing in between: the reader's directory cache
			// decodes the entries afresh.
			if _, err := arch.ReadDir(root); err != nil {
				t.Fatal(err)
			}
		}
		if nodes[0] != nodes[1] {
			t.Errorf("%s: two lookups gave two nodes (%#v, %#v): bazil would give them two node IDs", name, nodes[0], nodes[1])
		}
	}
}

// The compact stat a node keeps answers the attributes the entry has:
// sizes for files and symlinks, device numbers (and no size) for devices,
// two links for hardlinks, the setuid bit, nanoseconds.
func TestPxarStat(t *testing.T) {
	for _, e := range []pxar.Entry{
		{Kind: pxar.KindFile, Mode: 0o104755, UID: 1, GID: 2, MtimeSec: 1700000000, MtimeNsec: 5, Size: 1 << 40, Hardlink: true},
		{Kind: pxar.KindSymlink, Mode: 0o120777, Size: 3, LinkTarget: "abc"},
		{Kind: pxar.KindCharDev, Mode: 0o020666, RdevMajor: 250, RdevMinor: 70000},
	} {
		st := statOf(&e)
		var a fuse.Attr
		pxarAttr(&a, 9, &st)
		wantSize, wantRdev, wantLinks := e.Size, uint32(0), uint32(1)
		if e.Kind == pxar.KindCharDev {
			wantSize, wantRdev = 0, encodeDev(e.RdevMajor, e.RdevMinor)
		}
		if e.Hardlink {
			wantLinks = 2
		}
		if a.Size != wantSize || a.Rdev != wantRdev || a.Nlink != wantLinks || a.Uid != e.UID || a.Gid != e.GID ||
			a.Mode != pxarMode(e.Kind, uint16(e.Mode)) || a.Mtime.UnixNano() != e.MtimeSec*1e9+int64(e.MtimeNsec) {
			t.Errorf("%v: %+v", e.Kind, a)
		}
	}
}
