package encoder

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"pbsfs/pxar"
)

// listing describes a tree one line per entry (type, mode, owner, mtime,
// size or target, attributes), in archive order, for readable diffs.
func listing(root *Node) string {
	var sb strings.Builder
	var walk func(n *Node, path string)
	walk = func(n *Node, path string) {
		if n.HardlinkTo != nil {
			fmt.Fprintf(&sb, "h %s => %s\n", path, n.HardlinkTo.Name)
			return
		}
		fmt.Fprintf(&sb, "%07o %d/%d %d.%09d %s", n.Mode, n.UID, n.GID, n.MtimeSec, n.MtimeNsec, path)
		switch n.kind() {
		case pxar.ModeRegular:
			fmt.Fprintf(&sb, " size=%d", n.fileSize())
		case pxar.ModeSymlink:
			fmt.Fprintf(&sb, " -> %q", n.Symlink)
		case pxar.ModeBlock, pxar.ModeChar:
			fmt.Fprintf(&sb, " %d,%d", n.RdevMajor, n.RdevMinor)
		}
		for _, x := range n.Xattrs {
			fmt.Fprintf(&sb, " xattr:%s=%q", x.Name, x.Value)
		}
		a := n.ACL
		if len(a.Users)+len(a.Groups)+len(a.DefaultUsers)+len(a.DefaultGroups) > 0 || a.GroupObj != nil || a.Default != nil {
			fmt.Fprintf(&sb, " acl:u%v g%v", a.Users, a.Groups)
			if a.GroupObj != nil {
				fmt.Fprintf(&sb, " gobj:%d", *a.GroupObj)
			}
			if a.Default != nil {
				fmt.Fprintf(&sb, " default:%+v", *a.Default)
			}
			fmt.Fprintf(&sb, " du%v dg%v", a.DefaultUsers, a.DefaultGroups)
		}
		if n.FCaps != nil {
			fmt.Fprintf(&sb, " fcaps:%x", n.FCaps)
		}
		sb.WriteByte('\n')
		children := slices.Clone(n.Children)
		slices.SortFunc(children, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
		for _, c := range children {
			walk(c, path+"/"+c.Name)
		}
	}
	walk(root, "")
	return sb.String()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test needs root (mknod, chown)")
		}
		t.Skip("needs root (mknod, chown)")
	}
}

// TestFromDir builds a real tree on local disk with every entry kind,
// xattrs, ACLs (set with setfacl) and file capabilities, and checks that
// FromDir reads it as the tree stated here: same listing, same archive.
func TestFromDir(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setfacl"); err != nil {
		t.Fatal("setfacl not found (Debian package acl)")
	}
	src := filepath.Join(t.TempDir(), "src")
	p := func(rel string) string { return filepath.Join(src, rel) }
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	bigData := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	fcaps, _ := hex.DecodeString("0100000200200000000000000000000000000000")
	const t0 = 1717200000

	check(os.Mkdir(src, 0o755))
	for _, d := range []string{"acl-dir", "empty-dir", "sticky", "sub", "sub/deep"} {
		check(os.Mkdir(p(d), 0o755))
	}
	files := map[string]string{
		"acl-dir/inner": "inner\n", "acl-file": "acl\n", "caps": "#!/bin/sh\n", "empty": "",
		"hard1": "linked\n", "old": "before 1970\n", "setuid": "suid\n", "sub/deep/x": "x\n",
		"with space & ünï": "utf-8\n", "xattr-file": "xattrs\n",
	}
	for name, data := range files {
		check(os.WriteFile(p(name), []byte(data), 0o644))
	}
	check(os.WriteFile(p("big"), bigData, 0o600))
	check(os.Link(p("hard1"), p("sub/hard2")))
	check(os.Symlink("hard1", p("link")))
	check(os.Symlink("/etc/hostname", p("abs-link")))
	check(unix.Mknod(p("blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
	check(unix.Mknod(p("chr"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	check(unix.Mkfifo(p("fifo"), 0o644))
	check(unix.Mknod(p("sock"), unix.S_IFSOCK|0o755, 0))
	check(unix.Lsetxattr(p("xattr-file"), "user.comment", []byte("hello"), 0))
	check(unix.Lsetxattr(p("sub"), "user.empty", nil, 0))
	check(unix.Lsetxattr(p("caps"), "security.capability", fcaps, 0))
	run("setfacl", "-m", "u:1002:r-x,g:101:r--", p("acl-file"))
	run("setfacl", "-d", "-m", "u:1001:rwx,g:100:r-x", p("acl-dir"))
	check(os.Chmod(p("acl-dir"), 0o750))

	// Owners, then modes (chown clears setuid), then times bottom-up.
	for _, name := range []string{"acl-dir", "acl-dir/inner", "big", "hard1", "old", "sub", "sub/deep", "sub/deep/x", "xattr-file"} {
		check(os.Lchown(p(name), 1000, 1000))
	}
	check(os.Lchown(p("link"), 1000, 100))
	check(unix.Chmod(p("setuid"), 0o4755))
	check(unix.Chmod(p("sticky"), 0o1777))
	check(unix.Chmod(p("caps"), 0o755))
	check(unix.Chmod(p("blk"), 0o660)) // mknod applied the umask
	check(unix.Chmod(p("chr"), 0o666))
	var paths []string
	check(filepath.Walk(src, func(path string, _ os.FileInfo, err error) error {
		paths = append(paths, path)
		return err
	}))
	slices.Reverse(paths) // children before their directories
	for i, path := range paths {
		ts := []unix.Timespec{{Sec: t0, Nsec: 0}, {Sec: t0 + int64(i), Nsec: int64(i) * 1000}}
		if path == p("old") {
			ts[1] = unix.Timespec{Sec: -2, Nsec: 500000000}
		}
		check(unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	mtime := map[string]int64{}
	for i, path := range paths {
		rel, _ := filepath.Rel(src, path)
		mtime[rel] = int64(i)
	}

	// The same tree as data.
	node := func(rel string, mode uint64, uid, gid uint32) *Node {
		i := mtime[rel]
		return &Node{Name: filepath.Base(rel), Mode: mode, UID: uid, GID: gid, MtimeSec: t0 + i, MtimeNsec: uint32(i) * 1000}
	}
	file := func(rel string, perm uint64, uid uint32) *Node {
		n := node(rel, pxar.ModeRegular|perm, uid, uid)
		n.Data = []byte(files[rel])
		return n
	}
	dir := func(rel string, perm uint64, uid uint32, children ...*Node) *Node {
		n := node(rel, pxar.ModeDir|perm, uid, uid)
		n.Children = children
		return n
	}
	dev := func(rel string, mode, major, minor uint64) *Node {
		n := node(rel, mode, 0, 0)
		n.RdevMajor, n.RdevMinor = major, minor
		return n
	}
	link := func(rel, target string, uid, gid uint32) *Node {
		n := node(rel, pxar.ModeSymlink|0o777, uid, gid)
		n.Symlink = target
		return n
	}

	aclDir := dir("acl-dir", 0o750, 1000, file("acl-dir/inner", 0o644, 1000))
	aclDir.ACL = ACL{
		Default:       &ACLDefault{UserObj: 7, GroupObj: 5, Other: 5, Mask: 7},
		DefaultUsers:  []ACLEntry{{1001, 7}},
		DefaultGroups: []ACLEntry{{100, 5}},
	}
	aclFile := file("acl-file", 0o654, 0) // group bits = mask r-x
	aclFile.ACL = ACL{Users: []ACLEntry{{1002, 5}}, Groups: []ACLEntry{{101, 4}}, GroupObj: Perm(4)}
	big := node("big", pxar.ModeRegular|0o600, 1000, 1000)
	big.Size, big.Open = uint64(len(bigData)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(bigData)), nil }
	caps := file("caps", 0o755, 0)
	caps.FCaps = fcaps
	hard1 := file("hard1", 0o644, 1000)
	old := file("old", 0o644, 1000)
	old.MtimeSec, old.MtimeNsec = -2, 500000000
	sub := dir("sub", 0o755, 1000,
		dir("sub/deep", 0o755, 1000, file("sub/deep/x", 0o644, 1000)),
		&Node{Name: "hard2", HardlinkTo: hard1})
	sub.Xattrs = []Xattr{{"user.empty", []byte{}}}
	xf := file("xattr-file", 0o644, 1000)
	xf.Xattrs = []Xattr{{"user.comment", []byte("hello")}}
	want := dir(".", 0o755, 0,
		link("abs-link", "/etc/hostname", 0, 0), aclDir, aclFile, big,
		dev("blk", pxar.ModeBlock|0o660, 8, 1), caps, dev("chr", pxar.ModeChar|0o666, 1, 3),
		file("empty", 0o644, 0), dir("empty-dir", 0o755, 0), node("fifo", pxar.ModeFIFO|0o644, 0, 0),
		hard1, link("link", "hard1", 1000, 100), old, file("setuid", 0o4755, 0),
		node("sock", pxar.ModeSocket|0o755, 0, 0), dir("sticky", 0o1777, 0), sub,
		file("with space & ünï", 0o644, 0), xf)
	want.Name = ""

	got, err := FromDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := listing(got), listing(want); g != w {
		t.Fatalf("FromDir listing:\n%s\nwant:\n%s", g, w)
	}
	var gotV1, wantV1 bytes.Buffer
	check(WriteV1(&gotV1, got))
	check(WriteV1(&wantV1, want))
	sameBytes(t, "v1 archive of FromDir", gotV1.Bytes(), wantV1.Bytes())
	// The files are read when encoding: a file that changed size since
	// FromDir is refused.
	check(os.WriteFile(p("big"), []byte("shrunk"), 0o600))
	if err := WriteV1(io.Discard, got); err == nil || !strings.Contains(err.Error(), "/big: read: 6 of 3145728 bytes") {
		t.Errorf("changed file: error %v", err)
	}
}

func TestFromDirRefusesNonDirectories(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{f, filepath.Join(t.TempDir(), "missing")} {
		if _, err := FromDir(path); err == nil {
			t.Errorf("FromDir(%s): no error", path)
		}
	}
}

func TestParseACL(t *testing.T) {
	enc := func(entries ...[3]uint32) []byte {
		b := []byte{2, 0, 0, 0}
		for _, e := range entries {
			b = append(b, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8))
			b = append(b, byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
		}
		return b
	}
	const none = 0xffffffff
	// A minimal ACL (no mask) stores nothing; named entries are sorted.
	var a ACL
	if err := parseACL(enc([3]uint32{aclUserObj, 6, none}, [3]uint32{aclGroupObj, 4, none}, [3]uint32{aclOther, 4, none}), &a, false); err != nil || a.GroupObj != nil || a.Users != nil {
		t.Errorf("minimal ACL: %+v, %v", a, err)
	}
	a = ACL{}
	err := parseACL(enc([3]uint32{aclUserObj, 6, none}, [3]uint32{aclUser, 7, 1003}, [3]uint32{aclUser, 5, 1001},
		[3]uint32{aclGroupObj, 4, none}, [3]uint32{aclMask, 7, none}, [3]uint32{aclOther, 0, none}), &a, false)
	if err != nil || a.GroupObj == nil || *a.GroupObj != 4 || !slices.Equal(a.Users, []ACLEntry{{1001, 5}, {1003, 7}}) {
		t.Errorf("access ACL: %+v, %v", a, err)
	}
	// A default ACL without a mask gets NO_MASK.
	a = ACL{}
	if err := parseACL(enc([3]uint32{aclUserObj, 7, none}, [3]uint32{aclGroupObj, 5, none}, [3]uint32{aclOther, 0, none}), &a, true); err != nil ||
		a.Default == nil || *a.Default != (ACLDefault{7, 5, 0, pxar.ACLNoMask}) {
		t.Errorf("default ACL: %+v, %v", a, err)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0}, {2, 0, 0, 0, 1}, enc([3]uint32{0x40, 0, 0})} {
		if err := parseACL(bad, &ACL{}, false); err == nil {
			t.Errorf("parseACL(%x): no error", bad)
		}
	}
}
