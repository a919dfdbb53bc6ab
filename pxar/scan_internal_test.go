package pxar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
	"testing"
)

// tableKid is a goodbye table item: a name and the child's range, relative
// to the directory's ENTRY.
type tableKid struct {
	name       string
	start, end uint64
}

// tableDir builds a directory — ENTRY, body, GOODBYE — whose goodbye table
// lists exactly kids, wherever they are.
func tableDir(body []byte, kids []tableKid) []byte {
	b := append(statBytes(ModeDir|0o755, 0), body...)
	sort.Slice(kids, func(i, j int) bool { return HashFilename([]byte(kids[i].name)) < HashFilename([]byte(kids[j].name)) })
	gb := uint64(len(b))
	n := len(kids)
	b = append(b, header(TypeGoodbye, uint64(HeaderSize+GoodbyeItemSize*(n+1)))...)
	for _, s := range bstOrder(n) {
		k := kids[s]
		b = binary.LittleEndian.AppendUint64(b, HashFilename([]byte(k.name)))
		b = binary.LittleEndian.AppendUint64(b, gb-k.start)
		b = binary.LittleEndian.AppendUint64(b, k.end-k.start)
	}
	b = binary.LittleEndian.AppendUint64(b, GoodbyeTailMarker)
	b = binary.LittleEndian.AppendUint64(b, gb)
	return binary.LittleEndian.AppendUint64(b, uint64(HeaderSize+GoodbyeItemSize*(n+1)))
}

// A subdirectory whose goodbye table disagrees with its stream — a child
// the table does not list, a listed child hidden inside a file's payload —
// is listed (or refused) from its table as without the scan, and the scan
// does not trip over it.
func TestScanAheadTableDisagrees(t *testing.T) {
	name := func(s string) []byte { return itemBytes(TypeFilename, append([]byte(s), 0)) }
	entry := uint64(HeaderSize + StatSize)
	// d1: a, b, c in the stream; the table lists a and c only.
	var body []byte
	var kids []tableKid
	for _, n := range []string{"a", "b", "c"} {
		start := entry + uint64(len(body))
		body = append(append(body, name(n)...), fifoBody()...)
		if n != "b" {
			kids = append(kids, tableKid{n, start, entry + uint64(len(body))})
		}
	}
	d1 := tableDir(body, kids)
	// d2: file f whose payload holds a FILENAME "g" and a FIFO that the
	// table lists too.
	ghost := append(name("g"), fifoBody()...)
	f := append(append(name("f"), statBytes(ModeRegular|0o644, 0)...), itemBytes(TypePayload, ghost)...)
	gStart := entry + uint64(len(f)) - uint64(len(ghost))
	d2 := tableDir(f, []tableKid{{"f", entry, entry + uint64(len(f))}, {"g", gStart, gStart + uint64(len(ghost))}})
	meta := flatArchive([]rawChild{{name: []byte("d1"), body: d1}, {name: []byte("d2"), body: d2}})

	list := func(o Options) (got [2]string) {
		a, err := Open(bytes.NewReader(meta), int64(len(meta)), nil, 0, o)
		if err != nil {
			t.Fatal(err)
		}
		root, _ := a.Root()
		dirs, err := a.ReadDir(root)
		if err != nil || len(dirs) != 2 {
			t.Fatalf("root: %v, %v", dirs, err)
		}
		for i, d := range dirs {
			kids, err := a.ReadDir(d)
			got[i] = errString(err)
			for _, k := range kids {
				got[i] += " " + k.Name
			}
		}
		return got
	}
	want, got := list(Options{}), list(Options{ScanAhead: 100})
	if got != want {
		t.Errorf("with the scan %q, without %q", got, want)
	}
	if want[0] != "<nil> a c" || !bytes.Contains([]byte(want[1]), []byte("overlaps")) {
		t.Errorf("the archive is not what the test means: %q", want)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	if !errors.Is(err, ErrCorrupt) {
		return "not ErrCorrupt: " + err.Error()
	}
	return err.Error()
}
