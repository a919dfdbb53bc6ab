package encoder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"pbsfs/pxar"
)

// The tree of the pxar-crate-* fixtures (pxar-format.md Appendix A.3/A.4,
// file contents as in the fixture).
const t0 = 1715000000 // 2024-05-06T12:53:20Z

type crateNodes struct {
	root, big *Node
}

func crateTree() crateNodes {
	dir := func(name string, mode uint64, uid uint32, children ...*Node) *Node {
		return &Node{Name: name, Mode: pxar.ModeDir | mode, UID: uid, GID: uid, MtimeSec: t0, Children: children}
	}
	file := func(name string, mode uint64, mtime int64, data string) *Node {
		return &Node{Name: name, Mode: pxar.ModeRegular | mode, UID: 1000, GID: 1000, MtimeSec: mtime, Data: []byte(data)}
	}
	special := func(name string, mode uint64) *Node {
		return &Node{Name: name, Mode: mode, MtimeSec: t0}
	}
	big := &Node{Name: "big.bin", Mode: pxar.ModeRegular | 0o600, UID: 1000, GID: 1000, MtimeSec: t0,
		Size: 300000, Open: func() (io.ReadCloser, error) { return io.NopCloser(&patternReader{n: 300000}), nil }}

	readme := file("README.txt", 0o644, t0+1, "Hello from pxar!\n")
	readme.MtimeNsec = 1
	ping := file("ping", 0o755, t0, "#!/bin/sh\necho ping\n")
	ping.FCaps, _ = hex.DecodeString("0100000200200000000000000000000000000000")
	var docs []*Node
	for i := 0; i < 20; i++ {
		docs = append(docs, file(fmt.Sprintf("f%02d", i), 0o644, t0+int64(i), fmt.Sprintf("doc %02d\n", i)))
	}
	aclDir := dir("acl-dir", 0o770, 1000, file("inner.txt", 0o640, t0, "inner\n"))
	aclDir.ACL = ACL{
		Users:         []ACLEntry{{1002, pxar.ACLRead | pxar.ACLExecute}},
		Groups:        []ACLEntry{{101, pxar.ACLRead}},
		GroupObj:      Perm(7),
		Default:       &ACLDefault{UserObj: 7, GroupObj: 5, Other: 0, Mask: pxar.ACLNoMask},
		DefaultUsers:  []ACLEntry{{1001, 7}},
		DefaultGroups: []ACLEntry{{100, 5}},
	}
	aclDir.ProjID = Perm(42)
	blk := special("blk", pxar.ModeBlock|0o660)
	blk.RdevMajor, blk.RdevMinor = 8, 1
	null := special("null", pxar.ModeChar|0o666)
	null.RdevMajor, null.RdevMinor = 1, 3
	old := file("old.txt", 0o644, -2, "from before 1970\n")
	old.MtimeNsec = 500000000
	xf := file("xattr-file", 0o640, t0+2, "has xattrs and acls\n")
	xf.Xattrs = []Xattr{
		{"security.selinux", []byte("system_u:object_r:tmp_t:s0\x00")},
		{"user.comment", []byte("hello")},
		{"user.empty", nil},
	}
	xf.ACL = ACL{Users: []ACLEntry{{1001, 6}}, Groups: []ACLEntry{{100, 4}}, GroupObj: Perm(5)}
	absLink := special("abs-link", pxar.ModeSymlink|0o777)
	absLink.Symlink = "/etc/hostname"
	relLink := special("link-to-readme", pxar.ModeSymlink|0o777)
	relLink.Symlink = "README.txt"

	// Children deliberately out of order: the encoder sorts by name bytes.
	root := dir("", 0o755, 0,
		xf, readme, absLink, aclDir, big,
		dir("bin", 0o755, 1000, ping),
		dir("dev", 0o755, 1000, null, blk),
		dir("docs", 0o755, 1000, docs...),
		file("empty", 0o644, t0, ""),
		dir("emptydir", 0o700, 1000),
		special("fifo", pxar.ModeFIFO|0o644),
		&Node{Name: "hard-readme", HardlinkTo: readme},
		relLink, old,
		special("sock", pxar.ModeSocket|0o755),
		dir("sub", 0o755, 1000, dir("deep", 0o755, 1000,
			&Node{Name: "nested-hard", HardlinkTo: docs[3]},
			file("x", 0o644, t0, "x\n"))),
		file("with space & ünï.txt", 0o644, t0, "utf-8 name\n"),
	)
	root.MtimeNsec = 500000000
	return crateNodes{root: root, big: big}
}

// patternReader yields n bytes of the big.bin pattern: byte i = (7i + i/256) mod 251.
type patternReader struct{ off, n int }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := min(len(b), p.n-p.off)
	for i := range b[:k] {
		j := p.off + i
		b[i] = byte((j*7 + j/256) % 251)
	}
	p.off += k
	return k, nil
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameBytes reports the first difference of two streams.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-16)
	t.Errorf("%s: %d bytes, want %d; first difference at offset %d:\n got  %x\n want %x",
		what, len(got), len(want), i, got[lo:min(len(got), i+32)], want[lo:min(len(want), i+32)])
}

func TestWriteV1MatchesPxarCrate(t *testing.T) {
	var out bytes.Buffer
	if err := WriteV1(&out, crateTree().root); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "v1 archive", out.Bytes(), readFixture(t, "pxar-crate-v1.pxar"))
}

func TestWriteSplitMatchesPxarCrate(t *testing.T) {
	tr := crateTree()
	var meta, payload bytes.Buffer
	err := WriteSplit(&meta, &payload, tr.root, SplitOptions{
		Prelude: []byte(`{"exclude-patterns":"*.tmp\n"}`),
		Reused:  map[*Node][]byte{tr.big: []byte("PADDING")},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "mpxar", meta.Bytes(), readFixture(t, "pxar-crate-v2.mpxar"))
	sameBytes(t, "ppxar", payload.Bytes(), readFixture(t, "pxar-crate-v2.ppxar"))
}

func TestWriteCatalogMatchesPBS(t *testing.T) {
	var out bytes.Buffer
	if err := WriteCatalog(&out, CatalogArchive{Name: "root.pxar.didx", Root: crateTree().root}); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "catalog", out.Bytes(), readFixture(t, "pxar-crate-v1.pcat1"))
}

// clientTree is the tree of proxmox-backup's archive-creation test
// (pxar-format.md §12, Appendix A.1): folder_0..9/file_0..9, 1 MiB of zeros
// each, mode 0777, owner 1000:1000, mtime 0.
func clientTree() (*Node, []*Node) {
	root := &Node{Mode: pxar.ModeDir | 0o777, UID: 1000, GID: 1000}
	var files []*Node
	for i := 0; i < 10; i++ {
		d := &Node{Name: fmt.Sprintf("folder_%d", i), Mode: pxar.ModeDir | 0o777, UID: 1000, GID: 1000}
		for j := 0; j < 10; j++ {
			f := &Node{Name: fmt.Sprintf("file_%d", j), Mode: pxar.ModeRegular | 0o777, UID: 1000, GID: 1000,
				Size: 1 << 20, Open: func() (io.ReadCloser, error) {
					return io.NopCloser(io.LimitReader(zeros{}, 1<<20)), nil
				}}
			d.Children = append(d.Children, f)
			files = append(files, f)
		}
		root.Children = append(root.Children, d)
	}
	return root, files
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// The real client's data run: fresh payloads, goodbye sizes of files count
// metadata + file size (§10.3). The 100 MiB payload stream is compared by
// its SHA-256 (SOURCE.txt; that stream's chunks match the real .ppxar.didx).
func TestWriteSplitMatchesClientDataRun(t *testing.T) {
	root, _ := clientTree()
	var meta bytes.Buffer
	h := sha256.New()
	cw := &counter{w: h}
	if err := WriteSplit(&meta, cw, root, SplitOptions{}); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "mpxar", meta.Bytes(), readFixture(t, "backup-client-pxar-data.mpxar"))
	if cw.n != 104859232 {
		t.Errorf("payload stream: %d bytes, want 104859232", cw.n)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != "6eb275c1ef20d662d518a46b1c8a309fa83d72fafd1ef8ddcaabadfa415bf84a" {
		t.Errorf("payload stream sha256 %s", got)
	}
}

// The real client's metadata (re-use) run: an empty PRELUDE, every file
// re-used from the previous stream, which is injected whole (its start
// marker before file_0, its tail marker at the end) — offsets +16, goodbye
// sizes without the file size.
func TestWriteSplitMatchesClientReuseRun(t *testing.T) {
	root, files := clientTree()
	reused := map[*Node][]byte{}
	for i, f := range files {
		reused[f] = nil
		if i == 0 {
			reused[f] = []byte{0xd2, 0x4e, 0x4a, 0x19, 0xc2, 0x68, 0x4c, 0x83, 16, 0, 0, 0, 0, 0, 0, 0}
		}
	}
	var meta bytes.Buffer
	cw := &counter{w: io.Discard}
	err := WriteSplit(&meta, cw, root, SplitOptions{
		Prelude:         []byte{},
		Reused:          reused,
		TrailingPadding: []byte{0xb5, 0x81, 0x4c, 0x98, 0x8b, 0xb7, 0x72, 0x6c, 16, 0, 0, 0, 0, 0, 0, 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "mpxar", meta.Bytes(), readFixture(t, "backup-client-pxar-expected.mpxar"))
	if cw.n != 104859232+32 {
		t.Errorf("payload stream: %d bytes, want %d", cw.n, 104859232+32)
	}
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
