package fs

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// TestPxarNodeMemory measures what the nodes of a walked archive keep:
// every entry of an archive of dirs×files regular files is listed and
// looked up, as a cold `find -ls` makes the kernel do, and the nodes are
// held as bazil holds them after a walk (an interface in a slice). The
// archive's directory cache holds one directory, so what stays is what the
// nodes keep. It reports the live heap per entry, and fails above
// maxPxarEntryBytes. A second walk then checks that every lookup gave the
// node the first gave (as bazil's node table, keyed by the Node value,
// sees them): node IDs stable without a child cache for files.
func TestPxarNodeMemory(t *testing.T) {
	const dirs, files = 20, 1000
	var sub []*encoder.Node
	for d := 0; d < dirs; d++ {
		var kids []*encoder.Node
		for f := 0; f < files; f++ {
			kids = append(kids, &encoder.Node{Name: fmt.Sprintf("file-%06d.txt", f), Mode: pxar.ModeRegular | 0o644, UID: 1000, GID: 1000, MtimeSec: 1700000000, Data: []byte("x")})
		}
		sub = append(sub, &encoder.Node{Name: fmt.Sprintf("dir-%04d", d), Mode: pxar.ModeDir | 0o755, Children: kids})
	}
	var buf bytes.Buffer
	if err := encoder.WriteV1(&buf, &encoder.Node{Mode: pxar.ModeDir | 0o755, Children: sub}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	{
		arch, err := pxar.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil, 0, pxar.Options{DirCacheSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		root, _ := arch.Root()
		tree := newPxarTree(arch, "ct/1/2024-01-01T00:00:00Z/root.pxar", 99, "root.pxar.didx")
		top := newPxarDir(e.fs, "ct/1/2024-01-01T00:00:00Z/root.pxar", nil, 98, tree, root, false)
		var held []any
		before := liveHeap()
		walkPxar(t, e, top, &held)
		after := liveHeap()
		perEntry := float64(after-before) / float64(len(held))
		t.Logf("%d entries: %.0f bytes of live heap per entry", len(held), perEntry)
		if perEntry > maxPxarEntryBytes {
			t.Errorf("the nodes of a walked archive keep %.0f bytes per entry, more than %d", perEntry, maxPxarEntryBytes)
		}
		table := map[fusefs.Node]int{}
		for _, n := range held {
			table[n.(fusefs.Node)]++
		}
		var again []any
		walkPxar(t, e, top, &again)
		for _, n := range again {
			table[n.(fusefs.Node)]++
		}
		if len(again) != len(held) || len(table) != len(held) {
			t.Errorf("two walks of %d entries (%d the second time) gave %d distinct nodes", len(held), len(again), len(table))
		}
		runtime.KeepAlive(held)
		runtime.KeepAlive(top)
	}
}

// maxPxarEntryBytes bounds TestPxarNodeMemory's live heap per entry: 565
// when nodes kept the decoded entry, 233 with a 96-byte node in a child
// cache, 119 with 64-byte value nodes and no child cache for files (the
// test's own slice, 16 bytes an entry, and the directories included), 136
// with the names the cap on held entries keeps (pxarcap.go: a 16-byte
// string header a name looked up, up to the cap).
const maxPxarEntryBytes = 145

func walkPxar(t *testing.T, e *env, d *pxarDir, held *[]any) {
	ents, err := d.ReadDirAll(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents[2:] {
		var resp fuse.LookupResponse
		n, err := d.Lookup(e.ctx, &fuse.LookupRequest{Name: de.Name}, &resp)
		if err != nil {
			t.Fatal(err)
		}
		var a fuse.Attr
		if err := n.Attr(e.ctx, &a); err != nil {
			t.Fatal(err)
		}
		*held = append(*held, n)
		if sub, ok := n.(*pxarDir); ok {
			walkPxar(t, e, sub, held)
		}
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
