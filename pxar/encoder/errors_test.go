package encoder

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"

	"pbsfs/pxar"
)

func TestWriteRefusesBadTrees(t *testing.T) {
	file := func(name string) *Node { return &Node{Name: name, Mode: pxar.ModeRegular | 0o644, Data: []byte("x")} }
	dir := func(children ...*Node) *Node { return &Node{Mode: pxar.ModeDir | 0o755, Children: children} }
	later := file("z")
	short := &Node{Name: "short", Mode: pxar.ModeRegular, Size: 10,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }}
	long := &Node{Name: "long", Mode: pxar.ModeRegular, Size: 2,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }}
	sym := &Node{Name: "s", Mode: pxar.ModeSymlink | 0o777, Symlink: "t"}
	for _, tc := range []struct {
		name string
		root *Node
		want string
	}{
		{"root not a dir", file("r"), "root must be a directory"},
		{"nil root", nil, "root must be a directory"},
		{"duplicate", dir(file("a"), file("a")), "duplicate name"},
		{"empty name", dir(file("")), "invalid file name"},
		{"dot", dir(file(".")), "invalid file name"},
		{"dotdot", dir(file("..")), "invalid file name"},
		{"slash", dir(file("a/b")), "contains '/'"},
		{"long name", dir(file(strings.Repeat("n", 4097))), "file name of 4097 bytes"},
		{"hardlink forward", dir(&Node{Name: "a", HardlinkTo: later}, later), "not an earlier regular file"},
		{"hardlink outside", dir(&Node{Name: "a", HardlinkTo: file("elsewhere")}), "not an earlier regular file"},
		{"hardlink to symlink", dir(sym, &Node{Name: "t", HardlinkTo: sym}), "not a regular file"},
		{"short file", dir(short), "read: 3 of 10 bytes"},
		{"long file", dir(long), "longer than its size 2"},
		{"size vs data", dir(&Node{Name: "f", Mode: pxar.ModeRegular, Size: 5, Data: []byte("x")}), "size 5 but 1 data bytes"},
		{"empty symlink", dir(&Node{Name: "s", Mode: pxar.ModeSymlink}), "symlink target of 0 bytes"},
		{"nanoseconds", dir(&Node{Name: "f", Mode: pxar.ModeRegular, MtimeNsec: 1e9}), "nanoseconds"},
		{"no file type", dir(&Node{Name: "f", Mode: 0o644}), "unknown file type"},
		{"children of a file", dir(&Node{Name: "f", Mode: pxar.ModeRegular, Children: []*Node{file("c")}}), "children of a non-directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				var err error
				if split {
					err = WriteSplit(io.Discard, io.Discard, tc.root, SplitOptions{})
				} else {
					err = WriteV1(io.Discard, tc.root)
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("split=%v: error %v, want %q", split, err, tc.want)
				}
			}
		})
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, io.ErrShortWrite
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriteReportsWriteErrors(t *testing.T) {
	root, _ := clientTree()
	if err := WriteV1(&failWriter{after: 1 << 20}, root); err == nil {
		t.Error("v1: no error from a failing writer")
	}
	if err := WriteSplit(io.Discard, &failWriter{after: 1 << 20}, root, SplitOptions{}); err == nil {
		t.Error("split: no error from a failing payload writer")
	}
	if err := WriteCatalog(&failWriter{after: 100}, CatalogArchive{Name: "root.pxar.didx", Root: crateTree().root}); err == nil {
		t.Error("catalog: no error from a failing writer")
	}
}

// Contents given by Open are streamed: encoding 100 MiB of files allocates
// a small fraction of that.
func TestWriteStreamsContents(t *testing.T) {
	root, _ := clientTree()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := WriteV1(io.Discard, root); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("encoding 100 MiB of file contents allocated %d bytes", alloc)
	}
}

func TestSvarint(t *testing.T) {
	for v, want := range map[int64][]byte{
		0: {0}, 1: {1}, 127: {0x7f}, 128: {0x80, 1}, -1: {0x81, 0}, -2: {0x82, 0},
		-128: {0x80, 0x81, 0},
	} {
		if got := appendSvarint(nil, v); !bytes.Equal(got, want) {
			t.Errorf("%d: %x, want %x", v, got, want)
		}
	}
}
