package pxar_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// Round trips through the project's encoder (pxar/encoder): trees with
// every entry kind, written as v1 and as split archives, read back through
// the goodbye tables; and a real directory on disk (with ACLs set by
// setfacl) read back against lstat/getxattr of the source.

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func file(name string, mode uint64, data []byte) *encoder.Node {
	return &encoder.Node{Name: name, Mode: pxar.ModeRegular | mode, UID: 1000, GID: 1000, MtimeSec: 1715000000, MtimeNsec: 123, Data: data}
}

func dir(name string, mode uint64, kids ...*encoder.Node) *encoder.Node {
	return &encoder.Node{Name: name, Mode: pxar.ModeDir | mode, MtimeSec: 1715000001, Children: kids}
}

// sampleTree holds every entry kind and attribute, a 3 MiB file, a
// directory of 1000 entries, non-UTF-8 and long names, hardlinks.
func sampleTree() (*encoder.Node, map[string]string) {
	big := file("big.bin", 0o644, pattern(3<<20+17, 1))
	empty := file("empty", 0o600, nil)
	var many []*encoder.Node
	for i := range 1000 {
		many = append(many, file(fmt.Sprintf("f%04d", i), 0o644, []byte(fmt.Sprint("content ", i))))
	}
	xf := file("xattrs", 0o640, []byte("x"))
	xf.Xattrs = []encoder.Xattr{{Name: "user.a", Value: []byte("1")}, {Name: "user.bin", Value: []byte{0, 0xff, 0}}, {Name: "user.empty", Value: []byte{}}}
	xf.ACL = encoder.ACL{Users: []encoder.ACLEntry{{ID: 1001, Perm: 6}}, Groups: []encoder.ACLEntry{{ID: 100, Perm: 4}}, GroupObj: encoder.Perm(5)}
	xf.FCaps = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	xf.ProjID = encoder.Perm(42)
	aclDir := dir("acl-dir", 0o770, file("inner", 0o640, []byte("inner\n")))
	aclDir.ACL = encoder.ACL{Default: &encoder.ACLDefault{UserObj: 7, GroupObj: 5, Other: 0, Mask: 7}, DefaultUsers: []encoder.ACLEntry{{ID: 1001, Perm: 7}}}
	old := file("old", 0o644, []byte("old"))
	old.MtimeSec, old.MtimeNsec = -2, 500000000
	root := dir("", 0o755,
		big, empty,
		dir("many", 0o755, many...),
		dir("nested", 0o755, dir("a", 0o700, dir("b", 0o755, file("deep.txt", 0o644, []byte("deep\n")),
			&encoder.Node{Name: "hl-empty", HardlinkTo: empty}))),
		&encoder.Node{Name: "sym-abs", Mode: pxar.ModeSymlink | 0o777, Symlink: "/etc/passwd"},
		&encoder.Node{Name: "sym-rel", Mode: pxar.ModeSymlink | 0o777, Symlink: "../x y"},
		&encoder.Node{Name: "blk", Mode: pxar.ModeBlock | 0o660, RdevMajor: 8, RdevMinor: 1},
		&encoder.Node{Name: "chr", Mode: pxar.ModeChar | 0o666, RdevMajor: 1, RdevMinor: 3},
		&encoder.Node{Name: "fifo", Mode: pxar.ModeFIFO | 0o644},
		&encoder.Node{Name: "sock", Mode: pxar.ModeSocket | 0o755},
		file("suid", 0o4755, []byte("#!/bin/sh\n")),
		dir("sgid-dir", 0o2775),
		dir("sticky", 0o1777),
		xf, aclDir, old,
		file("ünï côdé", 0o644, []byte("utf8")),
		file("\xff\xfe raw", 0o644, []byte("latin")),
		file(strings.Repeat("n", 255), 0o644, []byte("long")),
		&encoder.Node{Name: "hl-big", HardlinkTo: big},
	)
	links := map[string]string{"/hl-big": "/big.bin", "/nested/a/b/hl-empty": "/empty"}
	return root, links
}

type archives struct {
	name string
	open func(t *testing.T, root *encoder.Node) *pxar.Archive
}

var roundTrips = []archives{
	{"v1", func(t *testing.T, root *encoder.Node) *pxar.Archive {
		var meta bytes.Buffer
		if err := encoder.WriteV1(&meta, root); err != nil {
			t.Fatal(err)
		}
		a, err := pxar.Open(bytes.NewReader(meta.Bytes()), int64(meta.Len()), nil, 0, pxar.Options{DirCacheSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}},
	{"split", func(t *testing.T, root *encoder.Node) *pxar.Archive {
		var meta, payload bytes.Buffer
		reused := map[*encoder.Node][]byte{}
		for _, c := range root.Children {
			if c.Name == "big.bin" || c.Name == "old" {
				reused[c] = []byte("PADDING")
			}
		}
		if err := encoder.WriteSplit(&meta, &payload, root, encoder.SplitOptions{Prelude: []byte(`{"exclude-patterns":""}`), Reused: reused, TrailingPadding: []byte("tail")}); err != nil {
			t.Fatal(err)
		}
		a, err := pxar.Open(bytes.NewReader(meta.Bytes()), int64(meta.Len()), bytes.NewReader(payload.Bytes()), int64(payload.Len()), pxar.Options{DirCacheSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}},
}

func kindOf(mode uint64) pxar.Kind {
	return map[uint64]pxar.Kind{pxar.ModeDir: pxar.KindDir, pxar.ModeRegular: pxar.KindFile, pxar.ModeSymlink: pxar.KindSymlink,
		pxar.ModeBlock: pxar.KindBlockDev, pxar.ModeChar: pxar.KindCharDev, pxar.ModeFIFO: pxar.KindFIFO, pxar.ModeSocket: pxar.KindSocket}[mode&pxar.ModeTypeMask]
}

func readFile(a *pxar.Archive, e *pxar.Entry) ([]byte, error) {
	var out []byte
	buf := make([]byte, 128<<10+3)
	for off := int64(0); ; {
		n, err := a.ReadAt(e, buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// compareNode checks an entry against the node it was encoded from.
func compareNode(t *testing.T, a *pxar.Archive, path string, e *pxar.Entry, n *encoder.Node) {
	t.Helper()
	if n.HardlinkTo != nil {
		n = n.HardlinkTo
		if !e.Hardlink {
			t.Errorf("%s: not marked as hardlink", path)
		}
	}
	if e.Kind != kindOf(n.Mode) || e.Mode != n.Mode || e.UID != n.UID || e.GID != n.GID || e.MtimeSec != n.MtimeSec || e.MtimeNsec != n.MtimeNsec || e.Flags != n.Flags {
		t.Errorf("%s: stat %+v, encoded %+v", path, e, n)
	}
	if e.LinkTarget != n.Symlink || e.RdevMajor != n.RdevMajor || e.RdevMinor != n.RdevMinor {
		t.Errorf("%s: symlink/device %q %d,%d, encoded %q %d,%d", path, e.LinkTarget, e.RdevMajor, e.RdevMinor, n.Symlink, n.RdevMajor, n.RdevMinor)
	}
	var xs []pxar.Xattr
	for _, x := range n.Xattrs {
		xs = append(xs, pxar.Xattr{Name: x.Name, Value: string(x.Value)})
	}
	if !reflect.DeepEqual(e.Xattrs, xs) || !bytes.Equal(e.FCaps, n.FCaps) || !reflect.DeepEqual(e.ProjID, n.ProjID) {
		t.Errorf("%s: xattrs %q fcaps %x projid %v, encoded %q %x %v", path, e.Xattrs, e.FCaps, e.ProjID, xs, n.FCaps, n.ProjID)
	}
	conv := func(l []encoder.ACLEntry) []pxar.ACLEntry {
		var out []pxar.ACLEntry
		for _, x := range l {
			out = append(out, pxar.ACLEntry{ID: x.ID, Perm: x.Perm})
		}
		return out
	}
	want := pxar.ACL{Users: conv(n.ACL.Users), Groups: conv(n.ACL.Groups), GroupObj: n.ACL.GroupObj,
		DefaultUsers: conv(n.ACL.DefaultUsers), DefaultGroups: conv(n.ACL.DefaultGroups)}
	if d := n.ACL.Default; d != nil {
		want.Default = &pxar.ACLDefault{UserObj: d.UserObj, GroupObj: d.GroupObj, Other: d.Other, Mask: d.Mask}
	}
	if !reflect.DeepEqual(e.ACL, want) {
		t.Errorf("%s: ACL %+v, encoded %+v", path, e.ACL, want)
	}
	switch e.Kind {
	case pxar.KindFile:
		got, err := readFile(a, e)
		if err != nil || !bytes.Equal(got, n.Data) || e.Size != uint64(len(n.Data)) {
			t.Errorf("%s: read %d bytes (size %d), %v; encoded %d", path, len(got), e.Size, err, len(n.Data))
		}
	case pxar.KindSymlink:
		if e.Size != uint64(len(n.Symlink)) {
			t.Errorf("%s: symlink size %d", path, e.Size)
		}
	case pxar.KindDir:
		kids, err := a.ReadDir(e)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		nk := append([]*encoder.Node(nil), n.Children...)
		sort.Slice(nk, func(i, j int) bool { return nk[i].Name < nk[j].Name })
		if len(kids) != len(nk) {
			t.Fatalf("%s: %d children, encoded %d", path, len(kids), len(nk))
		}
		for i, k := range kids {
			p := strings.TrimSuffix(path, "/") + "/" + k.Name
			if k.Name != nk[i].Name {
				t.Fatalf("%s: child %d is %q, encoded %q", path, i, k.Name, nk[i].Name)
			}
			compareNode(t, a, p, k, nk[i])
		}
	}
}

func lookup(a *pxar.Archive, path string) (*pxar.Entry, error) {
	e, err := a.Root()
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if err != nil || name == "" {
			break
		}
		e, err = a.Lookup(e, name)
	}
	return e, err
}

func TestEncoderRoundTrip(t *testing.T) {
	for _, rt := range roundTrips {
		t.Run(rt.name, func(t *testing.T) {
			root, links := sampleTree()
			// Lookups first, on an archive that never listed a directory.
			a := rt.open(t, root)
			var paths []string
			var collect func(p string, n *encoder.Node)
			collect = func(p string, n *encoder.Node) {
				for _, c := range n.Children {
					cp := p + "/" + c.Name
					paths = append(paths, cp)
					collect(cp, c)
				}
			}
			collect("", root)
			ids := map[string]uint64{}
			for _, p := range paths {
				e, err := lookup(a, p)
				if err != nil {
					t.Fatalf("lookup %q: %v", p, err)
				}
				ids[p] = e.ID
			}
			for link, target := range links {
				if ids[link] != ids[target] {
					t.Errorf("hardlink %s has ID %d, its target %s %d", link, ids[link], target, ids[target])
				}
			}
			seen := map[uint64]string{}
			for p, id := range ids {
				if _, isLink := links[p]; isLink {
					continue
				}
				if q, dup := seen[id]; dup {
					t.Errorf("%s and %s share ID %d", p, q, id)
				}
				seen[id] = p
			}
			r, _ := a.Root()
			if _, err := a.Lookup(r, "f0001"); !errors.Is(err, pxar.ErrNotFound) {
				t.Errorf("lookup of a grandchild's name in the root: %v", err)
			}
			many, _ := lookup(a, "/many")
			if _, err := a.Lookup(many, "f1000"); !errors.Is(err, pxar.ErrNotFound) {
				t.Errorf("lookup of a missing name in a 1000-entry directory: %v", err)
			}
			// Then the whole tree through listings.
			compareNode(t, a, "/", r, root)
			if rt.name == "split" && string(a.Prelude()) != `{"exclude-patterns":""}` {
				t.Errorf("prelude %q", a.Prelude())
			}
		})
	}
}

// TestFromDirRoundTrip encodes a real directory (every kind the test can
// create, user xattrs, an access and a default ACL set with setfacl, a
// hardlink) and checks every entry against lstat and getxattr of the
// source: the reader's ACL xattrs must be the kernel's bytes.
func TestFromDirRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("setfacl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setfacl missing (package acl)")
		}
		t.Skip("setfacl missing")
	}
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc/sub"), 0o755))
	must(os.WriteFile(filepath.Join(src, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "big"), pattern(1<<20+5, 9), 0o600))
	must(os.Link(filepath.Join(src, "big"), filepath.Join(src, "etc/big-link")))
	must(os.Symlink("../big", filepath.Join(src, "etc/sym")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o640))
	must(os.WriteFile(filepath.Join(src, "acl"), []byte("acl"), 0o640))
	run("setfacl", "-m", "u:1001:rw-,g:100:r--", filepath.Join(src, "acl"))
	run("setfacl", "-d", "-m", "u:1001:rwx,g::r-x,o::---", filepath.Join(src, "etc/sub"))
	must(unix.Setxattr(filepath.Join(src, "etc/hosts"), "user.comment", []byte("hello\x00world"), 0))
	must(os.Chmod(filepath.Join(src, "etc/sub"), 0o2775))

	root, err := encoder.FromDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var meta bytes.Buffer
	must(encoder.WriteV1(&meta, root))
	a, err := pxar.Open(bytes.NewReader(meta.Bytes()), int64(meta.Len()), nil, 0, pxar.Options{})
	must(err)
	var check func(path string, e *pxar.Entry)
	check = func(path string, e *pxar.Entry) {
		full := filepath.Join(src, path)
		var st unix.Stat_t
		must(unix.Lstat(full, &st))
		if e.Mode != uint64(st.Mode) || e.UID != st.Uid || e.GID != st.Gid || e.MtimeSec != st.Mtim.Sec || int64(e.MtimeNsec) != st.Mtim.Nsec {
			t.Errorf("%s: %+v, lstat %+v", path, e, st)
		}
		names := listxattr(t, full)
		if got := e.XattrNames(); !reflect.DeepEqual(sortedCopy(got), names) {
			t.Errorf("%s: xattr names %q, source %q", path, got, names)
		}
		for _, n := range names {
			want := make([]byte, 64<<10)
			k, err := unix.Lgetxattr(full, n, want)
			must(err)
			if got, ok := e.Xattr(n); !ok || !bytes.Equal(got, want[:k]) {
				t.Errorf("%s: %s = %x, source %x", path, n, got, want[:k])
			}
		}
		switch e.Kind {
		case pxar.KindFile:
			want, err := os.ReadFile(full)
			must(err)
			got, err := readFile(a, e)
			if err != nil || !bytes.Equal(got, want) || e.Size != uint64(st.Size) {
				t.Errorf("%s: content differs (%v)", path, err)
			}
		case pxar.KindSymlink:
			want, _ := os.Readlink(full)
			if e.LinkTarget != want {
				t.Errorf("%s: symlink %q, source %q", path, e.LinkTarget, want)
			}
		case pxar.KindDir:
			kids, err := a.ReadDir(e)
			must(err)
			ents, err := os.ReadDir(full)
			must(err)
			if len(kids) != len(ents) {
				t.Fatalf("%s: %d entries, source %d", path, len(kids), len(ents))
			}
			for i, k := range kids {
				if k.Name != ents[i].Name() {
					t.Fatalf("%s: entry %q, source %q", path, k.Name, ents[i].Name())
				}
				check(filepath.Join(path, k.Name), k)
			}
		}
	}
	r, _ := a.Root()
	check("/", r)
	big, err := lookup(a, "/big")
	must(err)
	link, err := lookup(a, "/etc/big-link")
	must(err)
	if big.ID != link.ID || link.Hardlink == big.Hardlink {
		t.Errorf("hardlink pair: %d %v / %d %v", big.ID, big.Hardlink, link.ID, link.Hardlink)
	}
}

func listxattr(t *testing.T, path string) []string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil && !errors.Is(err, syscall.ENOTSUP) {
		t.Fatal(err)
	}
	var out []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	sort.Strings(c)
	if len(c) == 0 {
		return nil
	}
	return c
}
