package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// The pxar workloads' generator and in-process side on a small tree: no
// mounts, no timing.

func smallTree(t *testing.T) *genTree {
	t.Helper()
	g, err := newGenTree(treeSpec{files: 300, dirs: 15, bytes: 3 << 20, seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The tree is the same every time, is given directory by directory
// (List), and what the encoder stores, what package pxar reads back and
// what extract writes agree with its totals.
func TestGenTreeEncodesExtractsAndReadsBack(t *testing.T) {
	ctx := context.Background()
	g := smallTree(t)
	entries, files, size := g.totals()
	if files != 300 || entries <= files+15 || size <= 0 {
		t.Fatalf("totals: %d entries, %d files, %d bytes", entries, files, size)
	}
	root := g.root()
	if root.List == nil || len(root.Children) != 0 {
		t.Fatal("the root is not listed lazily")
	}
	var a, b bytes.Buffer
	if err := encoder.WriteV1(&a, root); err != nil {
		t.Fatal(err)
	}
	if err := encoder.WriteV1(&b, smallTree(t).root()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two generations of the same spec differ")
	}
	arch, err := pxar.Open(bytes.NewReader(a.Bytes()), int64(a.Len()), nil, 0, pxar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pxarWalk(ctx, arch); err != nil || n != entries {
		t.Errorf("pxarWalk = %d, %v; want %d", n, err, entries)
	}
	if f, n, err := pxarCatAll(ctx, arch); err != nil || f != files || n != size {
		t.Errorf("pxarCatAll = %d files, %d bytes, %v; want %d, %d", f, n, err, files, size)
	}
	dir := filepath.Join(t.TempDir(), "tree")
	if err := extract(g.root(), dir); err != nil {
		t.Fatal(err)
	}
	if n, err := walk(ctx, dir); err != nil || n != entries {
		t.Errorf("walk of the extracted tree = %d, %v; want %d", n, err, entries)
	}
	if f, n, err := catAll(ctx, dir); err != nil || f != files || n != size {
		t.Errorf("catAll = %d files, %d bytes, %v; want %d, %d", f, n, err, files, size)
	}
}

// File contents: deterministic, block-stamped (no two blocks alike), and
// the sizes are skewed (most files small, a few large).
func TestGenTreeContents(t *testing.T) {
	g := smallTree(t)
	read := func(id, size int64) []byte {
		data, err := io.ReadAll(g.content(id, size))
		if err != nil || int64(len(data)) != size {
			t.Fatalf("content(%d): %d bytes, %v", id, len(data), err)
		}
		return data
	}
	x := read(7, 3*blockSize+5)
	if !bytes.Equal(x, read(7, 3*blockSize+5)) {
		t.Error("content is not deterministic")
	}
	if bytes.Equal(x[:blockSize], x[blockSize:2*blockSize]) || bytes.Equal(x[:blockSize], read(8, blockSize)) {
		t.Error("blocks repeat")
	}
	// The full-size spec: median a fraction of the mean, the largest 1 %
	// of the files a large share of the bytes.
	big, err := newGenTree(treeSpec{files: 100000, dirs: 5000, bytes: 1 << 30, seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	sizes := make([]int64, 10000)
	var total int64
	for i := range sizes {
		sizes[i] = big.fileSize(int64(i))
		total += sizes[i]
	}
	slices.Sort(sizes)
	var top int64
	for _, s := range sizes[len(sizes)-len(sizes)/100:] {
		top += s
	}
	mean := total / int64(len(sizes))
	if med := sizes[len(sizes)/2]; med > mean/3 || top < total/5 || mean < 5<<10 || mean > 20<<10 {
		t.Errorf("sizes: median %d, mean %d, top 1%% hold %d of %d bytes", med, mean, top, total)
	}
}

func TestPxarStoreInProcess(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	b := &bench{lockDir: filepath.Join(tmp, "locks"), px: &pxarData{store: filepath.Join(tmp, "store")}}
	if err := datastore.Create(b.px.store, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := datastore.Open(b.px.store, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: b.lockDir, Store: "bench", UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	g := smallTree(t)
	for _, a := range []pxarArchive{pxarV1, pxarSplit} {
		if err := writePxarSnapshot(st, a, g.root(), 0); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	entries, _, _ := g.totals()
	for _, a := range []pxarArchive{pxarV1, pxarSplit} {
		arch, done, err := b.inProcess(a)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := pxarWalk(ctx, arch); err != nil || n != entries {
			t.Errorf("%s: pxarWalk = %d, %v; want %d", a.what, n, err, entries)
		}
		done()
	}
	if n, err := decodeChunks(b.px.store, pxarV1.snapshot().Rel()+"/root.pxar.didx"); err != nil || n < 10 {
		t.Errorf("decodeChunks = %d, %v", n, err)
	}
}

func TestParseOp(t *testing.T) {
	for line, want := range map[string]string{
		`unique: 6, opcode: LOOKUP (1), nodeid: 1, insize: 42, pid: 12861`:                               "LOOKUP",
		`unique: 9, opcode: RELEASEDIR (29), nodeid: 1, insize: 64, pid: 0`:                              "RELEASE",
		`time=2026-12-04T07:50:00Z level=DEBUG msg="fuse: <- Lookup [ID=0x5 Node=0x1 Uid=0] \"etc\""`:    "LOOKUP",
		`level=DEBUG msg="fuse: <- Open [ID=0x7 Node=0x2] dir=true fl=OpenReadOnly"`:                     "OPENDIR",
		`level=DEBUG msg="fuse: <- Read [ID=0x8 Node=0x2] 0x1 4096 @0x0 dir=true fl=0 owner=0 ffl=0"`:    "READDIR",
		`level=DEBUG msg="fuse: <- Read [ID=0x9 Node=0x3] 0x2 131072 @0x0 dir=false fl=0 owner=0 ffl=0"`: "READ",
		`level=DEBUG msg="fuse: -> [ID=0x9] Read 131072"`:                                                "",
		`pbsfs: serving /store at /mnt`:                                                                  "",
	} {
		if got := parseOp(line); got != want {
			t.Errorf("parseOp(%q) = %q, want %q", line, got, want)
		}
	}
	c := newOpCounter()
	for _, l := range []string{"unique: 1, opcode: LOOKUP (1)", "unique: 2, opcode: LOOKUP (1)", "unique: 3, opcode: FORGET (2)", "unique: 4, opcode: GETATTR (3)"} {
		c.add(l)
	}
	got := perEntry(diffOps(map[string]int{"LOOKUP": 1}, c.snapshot()), 2)
	if want := "**1.00** (LOOKUP 0.50, GETATTR 0.50)"; got != want && got != "**1.00** (GETATTR 0.50, LOOKUP 0.50)" {
		t.Errorf("perEntry = %q, want %q", got, want)
	}
}

func TestParsePxarFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--quick", "--only", "pxar"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.pxarFiles != 2000 || cfg.pxarBig != 64<<20 || cfg.pxarMany != 20000 || !cfg.only["pxar"] {
		t.Errorf("quick pxar defaults: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--pxar-files", "100000", "--pxar-bytes", "1g", "--pxar-many", "0"}, io.Discard)
	if err != nil || cfg.pxarBytes != 1<<30 || cfg.pxarMany != 0 || cfg.pxarBig != 1<<30 {
		t.Errorf("pxar flags: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{{"--pxar-big", "x"}, {"--pxar-bytes", "-1"}, {"--pxar-files", "3"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// parseRchar reads the bytes-read counter of /proc/PID/io and refuses a
// text without it.
func TestParseRchar(t *testing.T) {
	got, err := parseRchar([]byte("rchar: 110768509\nwchar: 12\nsyscr: 25935\n"))
	if err != nil || got != 110768509 {
		t.Fatalf("parseRchar = %d, %v", got, err)
	}
	if _, err := parseRchar([]byte("wchar: 12\n")); err == nil {
		t.Fatal("parseRchar without rchar: no error")
	}
	if n, err := readChars(0); n != 0 || err != nil {
		t.Fatalf("readChars(0) = %d, %v", n, err)
	}
}

// The cold v1 walk's note puts the split walk (the FUSE floor) against
// decoding every chunk and the v1 walk against the split walk, and the
// bytes read against the chunk files; figures it lacks are left out.
func TestWalkFloorNote(t *testing.T) {
	v1, split := &result{}, &result{}
	for _, x := range []float64{1, 0.8, 0.9} {
		v1.add(sysRaw, x)
	}
	for _, x := range []float64{3, 3.6, 2.8} {
		v1.add(sysPbsfs, x)
	}
	for _, x := range []float64{2.4, 2.2} {
		split.add(sysPbsfs, x)
	}
	got := walkFloorNote(v1, split, []float64{150e6, 140e6, 100e6}, 100e6, 104)
	for _, want := range []string{"is 2.56× decode every chunk", "the v1 walk 1.30× the split walk", "104 chunk files", "each chunk loaded 1.40× on average"} {
		if !strings.Contains(got, want) {
			t.Errorf("note %q lacks %q", got, want)
		}
	}
	if got := walkFloorNote(&result{}, &result{}, nil, 0, 0); got != "" {
		t.Errorf("note without figures = %q", got)
	}
}
