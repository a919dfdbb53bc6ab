package integration

// pxar archives as directories (issue 12): a source tree on local disk with
// every entry kind is encoded (pxar/encoder.FromDir, v1 and split) into a
// store; through a real mount its files, metadata, xattrs and ACLs equal the
// source, by Go's syscalls and by ls, getfattr, getfacl, sha256sum, cp -a and
// diff; encrypted, damaged and malformed archives fail where they must and
// nowhere else; the store is unchanged afterwards.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	iofs "io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/manifest"
	"pbsfs/pxar/encoder"
)

// pxarBigFile is the size of the source tree's multi-chunk file.
const pxarBigFile = 3<<20 + 12345

// buildPxarSource writes a directory tree with every entry kind pxar
// archives and returns its path: files (one of several chunks, an empty
// one, setuid with a file capability), directories (an empty one, setgid,
// sticky), absolute and relative symlinks, hardlinks, a FIFO, a socket,
// block and character devices, user xattrs, access and default ACLs,
// owners other than root, nanosecond and negative mtimes.
func buildPxarSource(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"setfacl", "setcap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian packages acl, libcap2-bin): %v", tool, err)
		}
	}
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p := func(rel string) string { return filepath.Join(src, rel) }
	file := func(rel string, data []byte, mode os.FileMode, uid, gid int) {
		t.Helper()
		must(os.WriteFile(p(rel), data, 0o600))
		must(os.Chown(p(rel), uid, gid))
		must(os.Chmod(p(rel), mode))
	}
	dir := func(rel string, mode os.FileMode, uid, gid int) {
		t.Helper()
		must(os.Mkdir(p(rel), 0o700))
		must(os.Chown(p(rel), uid, gid))
		must(os.Chmod(p(rel), mode))
	}
	must(os.Mkdir(src, 0o755))

	rng := rand.New(rand.NewPCG(12, 34))
	big := make([]byte, pxarBigFile)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	file("README.txt", []byte("hello from pxar\n"), 0o644, 1000, 1000)
	file("big.bin", big, 0o600, 1000, 1000)
	file("empty", nil, 0o644, 0, 0)
	file("with space & ünï.txt", []byte("unicode name\n"), 0o644, 1000, 1000)
	file("old.txt", []byte("before 1970\n"), 0o644, 1000, 1000)
	must(os.Link(p("README.txt"), p("hard-readme")))
	must(os.Symlink("/etc/hostname", p("abs-link")))
	must(os.Symlink("README.txt", p("rel-link")))
	must(os.Symlink("../../docs/f03", p("dangling-looking")))

	dir("bin", 0o755, 0, 0)
	file("bin/ping", []byte("#!/bin/sh\necho ping\n"), 0o755|os.ModeSetuid, 0, 0)
	must(os.Chmod(p("bin/ping"), 0o755|os.ModeSetuid)) // chown cleared it
	run("setcap", "cap_net_raw+ep", p("bin/ping"))
	dir("sub", 0o775|os.ModeSetgid, 1000, 100)
	dir("sub/deep", 0o755, 1000, 1000)
	file("sub/deep/x", []byte("x\n"), 0o644, 1000, 1000)
	// No sticky bit: bazil.org/fuse drops it from attributes (fs/README.md,
	// "pxar archives").
	dir("tmp", 0o777, 0, 0)
	dir("emptydir", 0o700, 1000, 1000)
	dir("docs", 0o755, 1000, 1000)
	for i := range 30 {
		file(fmt.Sprintf("docs/f%02d", i), []byte(fmt.Sprintf("doc %d\n", i)), 0o644, 1000, 1000)
	}
	must(os.Link(p("docs/f03"), p("sub/deep/nested-hard")))

	dir("dev", 0o755, 0, 0)
	must(unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("dev/blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
	must(unix.Mknod(p("dev/big"), unix.S_IFCHR|0o600, int(unix.Mkdev(250, 70000))))
	must(unix.Mkfifo(p("fifo"), 0o644))
	must(os.Chmod(p("fifo"), 0o644))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p("sock"), Net: "unix"})
	must(err)
	l.SetUnlinkOnClose(false)
	l.Close()

	file("xattr-file", []byte("has xattrs\n"), 0o640, 1000, 1000)
	must(unix.Setxattr(p("xattr-file"), "user.comment", []byte("hello"), 0))
	must(unix.Setxattr(p("xattr-file"), "user.empty", nil, 0))
	must(unix.Setxattr(p("xattr-file"), "user.binary", []byte{0, 1, 0xff, 0}, 0))
	must(unix.Setxattr(p("docs"), "user.dir", []byte("on a directory"), 0))
	file("acl-file", []byte("acl\n"), 0o640, 1000, 1000)
	run("setfacl", "-m", "u:1001:rw-,g:100:r--", p("acl-file"))
	dir("acl-dir", 0o770, 1000, 1000)
	run("setfacl", "-m", "u:1002:r-x", p("acl-dir"))
	run("setfacl", "-d", "-m", "u::rwx,g::r-x,o::---,u:1001:rwx,g:100:r-x", p("acl-dir"))
	file("acl-dir/inner.txt", []byte("inner\n"), 0o640, 1000, 1000)

	// Times last (children change their directory's mtime): nanoseconds,
	// one before 1970 (a whole second: bazil.org/fuse truncates negative
	// times with a fraction towards zero).
	var all []string
	must(filepath.WalkDir(src, func(path string, d iofs.DirEntry, err error) error {
		all = append(all, path)
		return err
	}))
	for i := len(all) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(time.Date(2024, 5, 6, 12, 53, 20, 0, time.UTC).UnixNano() + int64(i)*1_000_000_007)
		if strings.HasSuffix(all[i], "old.txt") {
			ts = unix.Timespec{Sec: -2}
		}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, all[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return src
}

// pxarStore is a datastore holding the source tree as pxar archives:
//
//	ct/200  v1 root.pxar.didx and a catalog
//	ct/201  split root.mpxar.didx + root.ppxar.didx
//	ct/202  split, encrypted (key)
//	ct/203  v1, for damage: root.pxar.didx (a chunk of big.bin is removed
//	        by the test) and bad.pxar.didx (a malformed entry in sub/)
type pxarStore struct {
	dir       string
	key       testKey
	damageIdx *index.Dynamic // ct/203's root.pxar.didx
	v1        []byte         // the v1 stream
}

const (
	pxarV1    = "ct/200/2024-06-01T01:30:00Z"
	pxarSplit = "ct/201/2024-06-01T01:30:00Z"
	pxarEnc   = "ct/202/2024-06-01T01:30:00Z"
	pxarBad   = "ct/203/2024-06-01T01:30:00Z"
)

func newPxarStore(t *testing.T, src string) *pxarStore {
	t.Helper()
	tree, err := encoder.FromDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var v1, meta, payload bytes.Buffer
	if err := encoder.WriteV1(&v1, tree); err != nil {
		t.Fatal(err)
	}
	if err := encoder.WriteSplit(&meta, &payload, tree, encoder.SplitOptions{}); err != nil {
		t.Fatal(err)
	}
	var cat bytes.Buffer
	if err := encoder.WriteCatalog(&cat, encoder.CatalogArchive{Name: "root.pxar.didx", Root: tree}); err != nil {
		t.Fatal(err)
	}

	dir, st := createTestStore(t)
	defer st.Close()
	ps := &pxarStore{dir: dir, key: newTestKey(t), v1: v1.Bytes()}
	streams := func(kv ...any) []pxarStream {
		var out []pxarStream
		for i := 0; i < len(kv); i += 2 {
			out = append(out, pxarStream{kv[i].(string), kv[i+1].([]byte)})
		}
		return out
	}
	writePxarSnap(t, st, "200", 1, nil, streams("root.pxar.didx", v1.Bytes(), "catalog.pcat1.didx", cat.Bytes()))
	writePxarSnap(t, st, "201", 2, nil, streams("root.mpxar.didx", meta.Bytes(), "root.ppxar.didx", payload.Bytes()))
	writePxarSnap(t, st, "202", 3, ps.key.key, streams("root.mpxar.didx", meta.Bytes(), "root.ppxar.didx", payload.Bytes()))

	// bad.pxar: the FILENAME header of sub/deep/x (inside sub/, so the
	// root lists and sub/ fails) gets a type no item has.
	bad := slices.Clone(v1.Bytes())
	at := bytes.Index(bad, []byte("x\x00"))
	for at >= 0 && !bytes.Equal(bad[at-8:at], le64(uint64(16+2))) {
		next := bytes.Index(bad[at+1:], []byte("x\x00"))
		if next < 0 {
			at = -1
			break
		}
		at += 1 + next
	}
	if at < 16 {
		t.Fatal("FILENAME x not found in the v1 stream")
	}
	copy(bad[at-16:at-8], le64(0x1234567812345678))
	idx := writePxarSnap(t, st, "203", 4, nil, streams("root.pxar.didx", v1.Bytes(), "bad.pxar.didx", bad))
	ps.damageIdx = idx["root.pxar.didx"]
	return ps
}

func le64(v uint64) []byte {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b[:]
}

type pxarStream struct {
	file string
	data []byte
}

// writePxarSnap writes snapshot ct/<id> with the given dynamic-index
// streams, cut into chunks of 64 KiB to 1 MiB (a different cut per seed, so
// that snapshots share no chunk of the big file), encrypted with key when
// it is not nil. It returns the indexes by file name.
func writePxarSnap(t *testing.T, st *datastore.Store, id string, seed uint64, key *manifest.CryptConfig, streams []pxarStream) map[string]*index.Dynamic {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 77))
	g := datastore.Group{Type: "ct", ID: id}
	if err := st.CreateGroup(g, "root@pam"); err != nil {
		t.Fatal(err)
	}
	var infos []manifest.FileInfo
	files := map[string][]byte{}
	out := map[string]*index.Dynamic{}
	for _, s := range streams {
		var parts [][]byte
		for rest := s.data; len(rest) > 0; {
			n := min(len(rest), 64<<10+rng.IntN(960<<10))
			parts = append(parts, rest[:n])
			rest = rest[n:]
		}
		fi, raw, err := st.BuildDynamicIndex(s.file, parts, key)
		if err != nil {
			t.Fatal(err)
		}
		if out[s.file], err = index.ParseDynamic(raw); err != nil {
			t.Fatal(err)
		}
		infos = append(infos, fi)
		files[s.file] = raw
	}
	m, err := manifest.New("ct", id, 1717205400, infos)
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if err := m.Sign(key.IDKey()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.WriteSnapshot(datastore.Snapshot{Group: g, Time: "2024-06-01T01:30:00Z"}, m, files); err != nil {
		t.Fatal(err)
	}
	return out
}

// entryMeta describes an entry the way the archive keeps it: type and
// permission bits, owner, mtime in nanoseconds, size (regular files and
// symlinks), device numbers, symlink target, xattrs (ACLs and capabilities
// included) and the content's SHA-256.
func entryMeta(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	typ := st.Mode & unix.S_IFMT
	d := fmt.Sprintf("mode=%o uid=%d gid=%d mtime=%d.%09d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
	switch typ {
	case unix.S_IFREG:
		d += fmt.Sprintf(" size=%d sha256=%s", st.Size, fileSum(t, p))
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("readlink: %v", err)
		}
		d += fmt.Sprintf(" size=%d -> %q", st.Size, target)
	case unix.S_IFCHR, unix.S_IFBLK:
		d += fmt.Sprintf(" rdev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if typ == unix.S_IFREG || typ == unix.S_IFDIR {
		d += " xattrs=" + xattrDump(t, p)
	}
	return d
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// xattrDump lists the xattrs of p, sorted, with their values.
func xattrDump(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var names []string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, fmt.Sprintf("%s=%x", name, v[:k]))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// treeMeta describes every entry below root (entryMeta), by relative path.
func treeMeta(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = entryMeta(t, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// sameTree fails the test where the trees at want and got differ.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := treeMeta(t, want), treeMeta(t, got)
	if len(w) < 40 {
		t.Fatalf("source tree has only %d entries", len(w))
	}
	for p, d := range w {
		if gd, ok := g[p]; !ok {
			t.Errorf("%s: missing in %s", p, got)
		} else if gd != d {
			t.Errorf("%s:\n  want %s\n  got  %s", p, d, gd)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: not in the source", p)
		}
	}
}

// shell runs a shell command in dir and returns its output.
func shell(t *testing.T, dir, cmd string) string {
	t.Helper()
	c := exec.Command("sh", "-c", cmd)
	c.Dir = dir
	c.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s (in %s): %v\n%s", cmd, dir, err, out)
	}
	return string(out)
}

// sameOutput runs cmd in want and in got and compares the outputs after
// norm.
func sameOutput(t *testing.T, want, got, cmd string, norm func(string) string) {
	t.Helper()
	w, g := norm(shell(t, want, cmd)), norm(shell(t, got, cmd))
	if w != g {
		t.Errorf("%s differs:\n--- source\n%s\n--- mount\n%s", cmd, w, g)
	}
	if len(w) < 40 {
		t.Errorf("%s: output too short to compare: %q", cmd, w)
	}
}

func identity(s string) string { return s }

// statNorm drops the sizes of directories (the file system's, not the
// archive's) from stat -c '%F|%n … %s …' lines.
func statNorm(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "directory|"); ok {
			f := strings.Fields(rest)
			if len(f) > 6 {
				f[6] = "-"
			}
			lines[i] = strings.Join(f, " ")
		}
	}
	return strings.Join(lines, "\n")
}

// lsNorm drops what ls -l shows of the file system rather than the
// archive: link counts, directory sizes and the "total" block lines.
func lsNorm(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "total" {
			continue
		}
		if len(f) > 5 && len(f[0]) >= 10 {
			f[1] = "-"
			if f[0][0] == 'd' {
				f[4] = "-"
			}
		}
		out = append(out, strings.Join(f, " "))
	}
	return strings.Join(out, "\n")
}

func TestPxarArchives(t *testing.T) {
	src := buildPxarSource(t)
	ps := newPxarStore(t, src)

	// Damage ct/203's root.pxar: remove the chunk holding the middle of
	// big.bin (random data: no other snapshot shares it).
	mid := bytes.Index(ps.v1, []byte("big.bin\x00")) + pxarBigFile/2
	ci, _, _, ok := ps.damageIdx.ChunkAt(uint64(mid))
	if !ok {
		t.Fatal("no chunk at the middle of big.bin")
	}
	missing := filepath.Join(ps.dir, index.ChunkPath(ps.damageIdx.Entries[ci].Digest))
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, ps.dir)

	m := startMount(t, ps.dir)

	t.Run("listing", func(t *testing.T) {
		// ls -l asks for the ACLs (xattrs) of pbsfs's own files first:
		// their answer must not switch xattrs off for the archives.
		shell(t, m.path(pxarV1), "ls -l . >/dev/null && getfattr -d -m - notes manifest.json")
		names, err := readNames(m.path(pxarV1))
		if want := []string{"catalog.pcat1", "manifest.json", "notes", "root.pxar"}; err != nil || !slices.Equal(names, want) {
			t.Errorf("ls %s = %q %v, want %q", pxarV1, names, err, want)
		}
		names, err = readNames(m.path(pxarSplit))
		if want := []string{"manifest.json", "notes", "root.pxar"}; err != nil || !slices.Equal(names, want) {
			t.Errorf("ls %s = %q %v, want %q", pxarSplit, names, err, want)
		}
		for _, rel := range []string{pxarV1, pxarSplit} {
			ents, err := os.ReadDir(m.path(rel, "root.pxar", "docs"))
			if err != nil || len(ents) != 30 || !sort.SliceIsSorted(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() }) {
				t.Errorf("%s: docs/ listing: %d entries, %v", rel, len(ents), err)
			}
		}
	})

	for _, rel := range []string{pxarV1, pxarSplit} {
		root := m.path(rel, "root.pxar")
		t.Run("tree "+rel, func(t *testing.T) {
			sameTree(t, src, root)
			sameOutput(t, src, root, "ls -lRn --time-style=+%s.%N", lsNorm)
			sameOutput(t, src, root, "find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex", identity)
			sameOutput(t, src, root, "find . -print0 | sort -z | xargs -0 getfacl -P -n 2>/dev/null", identity)
			sameOutput(t, src, root, "find . -type f -print0 | sort -z | xargs -0 sha256sum", identity)
			sameOutput(t, src, root, "find . -type l -printf '%p -> ' -exec readlink {} ';' | sort", identity)
			sameOutput(t, src, root, "find . -printf '%y %m %U %G %s %T@ %p\\n' | grep -v '^d' | sort", identity)
			sameOutput(t, src, root, "find . -print0 | sort -z | xargs -0 stat -c '%F|%n %a %u %g %t %T %s %y'", statNorm)
			if got := shell(t, root, "getcap bin/ping"); !strings.Contains(got, "cap_net_raw=ep") {
				t.Errorf("getcap bin/ping: %q", got)
			}
		})
		t.Run("inodes "+rel, func(t *testing.T) {
			pxarInodes(t, root)
		})
		t.Run("cp -a "+rel, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "restore")
			shell(t, "/", "cp -a "+root+" "+dst)
			// diff calls special files of the same kind different:
			// sameTree compares those.
			shell(t, "/", "diff -r --no-dereference -x dev -x fifo -x sock "+src+" "+dst)
			sameTree(t, src, dst)
		})
	}

	t.Run("read-only", func(t *testing.T) {
		root := m.path(pxarV1, "root.pxar")
		f := filepath.Join(root, "README.txt")
		_, err := os.OpenFile(f, os.O_WRONLY, 0)
		wantErrno(t, "open for writing", err, syscall.EROFS)
		wantErrno(t, "truncate", os.Truncate(f, 0), syscall.EROFS)
		wantErrno(t, "chmod", os.Chmod(f, 0o600), syscall.EROFS)
		wantErrno(t, "utimes", os.Chtimes(f, time.Now(), time.Now()), syscall.EROFS)
		wantErrno(t, "unlink", os.Remove(f), syscall.EROFS)
		wantErrno(t, "rename", os.Rename(f, f+"x"), syscall.EROFS)
		wantErrno(t, "link", os.Link(f, f+"x"), syscall.EROFS)
		wantErrno(t, "create", os.WriteFile(filepath.Join(root, "new"), nil, 0o644), syscall.EROFS)
		wantErrno(t, "mkdir", os.Mkdir(filepath.Join(root, "newdir"), 0o755), syscall.EROFS)
		wantErrno(t, "symlink", os.Symlink("x", filepath.Join(root, "newlink")), syscall.EROFS)
		wantErrno(t, "mknod", unix.Mkfifo(filepath.Join(root, "newfifo"), 0o644), syscall.EROFS)
		wantErrno(t, "rmdir", os.Remove(filepath.Join(root, "emptydir")), syscall.EROFS)
		wantErrno(t, "setxattr", unix.Setxattr(f, "user.x", []byte("x"), 0), syscall.EROFS)
		wantErrno(t, "removexattr", unix.Removexattr(filepath.Join(root, "xattr-file"), "user.comment"), syscall.EROFS)
		wantErrno(t, "rm the archive", os.RemoveAll(root), syscall.EROFS, syscall.EPERM)
		// Reading a FIFO of the archive is a local pipe; a device of it
		// cannot be opened (nodev).
		_, err = os.OpenFile(filepath.Join(root, "dev/null"), os.O_RDONLY, 0)
		wantErrno(t, "open a device", err, syscall.EACCES, syscall.EPERM)
		// Archived devices and setuid files give no powers: nodev, nosuid.
		mounts, err := os.ReadFile("/proc/self/mounts")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[1] == m.dir {
				if opts := "," + f[3] + ","; !strings.Contains(opts, ",nodev,") || !strings.Contains(opts, ",nosuid,") {
					t.Errorf("mount options %s: want nodev and nosuid", f[3])
				}
			}
		}
	})

	t.Run("xattr buffers", func(t *testing.T) {
		f := m.path(pxarSplit, "root.pxar", "xattr-file")
		n, err := unix.Getxattr(f, "user.comment", nil)
		if err != nil || n != 5 {
			t.Errorf("size query: %d %v", n, err)
		}
		_, err = unix.Getxattr(f, "user.comment", make([]byte, 2))
		wantErrno(t, "getxattr into a small buffer", err, syscall.ERANGE)
		_, err = unix.Getxattr(f, "user.nothing", make([]byte, 64))
		wantErrno(t, "getxattr of a missing name", err, syscall.ENODATA)
		_, err = unix.Listxattr(f, make([]byte, 3))
		wantErrno(t, "listxattr into a small buffer", err, syscall.ERANGE)
		// pbsfs's own files have no xattrs, and say so per file.
		_, err = unix.Getxattr(m.path(pxarSplit, "notes"), "user.comment", make([]byte, 64))
		wantErrno(t, "getxattr on notes", err, syscall.ENODATA)
	})

	t.Run("encrypted without key", func(t *testing.T) {
		root := m.path(pxarEnc, "root.pxar")
		fi, err := os.Stat(root)
		if err != nil || !fi.IsDir() {
			t.Fatalf("stat: %v %v", fi, err)
		}
		_, err = os.ReadDir(root)
		wantErrno(t, "ls without key", err, syscall.EACCES)
		// ls -l and getfattr of the snapshot show it without an error
		// (no xattrs, like its attributes the index file's).
		if out := shell(t, m.path(pxarEnc), "ls -l && getfattr -d -m - root.pxar"); !strings.Contains(out, "root.pxar") {
			t.Errorf("ls -l: %s", out)
		}
		_, err = os.Stat(filepath.Join(root, "README.txt"))
		wantErrno(t, "stat inside without key", err, syscall.EACCES)
	})

	t.Run("damaged", func(t *testing.T) {
		root := m.path(pxarBad, "root.pxar")
		f, err := os.Open(filepath.Join(root, "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = io.ReadAll(f)
		wantErrno(t, "reading big.bin over a missing chunk", err, syscall.EIO)
		// Siblings, and the same file in the other snapshots, are fine.
		if got := fileSum(t, filepath.Join(root, "README.txt")); got != fileSum(t, filepath.Join(src, "README.txt")) {
			t.Error("README.txt next to the damage differs")
		}
		if fileSum(t, m.path(pxarV1, "root.pxar", "big.bin")) != fileSum(t, filepath.Join(src, "big.bin")) {
			t.Error("big.bin of another snapshot differs")
		}
		if names, err := readNames(filepath.Join(root, "docs")); err != nil || len(names) != 30 {
			t.Errorf("docs/ next to the damage: %d %v", len(names), err)
		}

		bad := m.path(pxarBad, "bad.pxar")
		if names, err := readNames(bad); err != nil || !slices.Contains(names, "sub") {
			t.Errorf("root of the malformed archive: %q %v", names, err)
		}
		_, err = os.ReadDir(filepath.Join(bad, "sub", "deep"))
		wantErrno(t, "listing the malformed directory", err, syscall.EIO)
		if fileSum(t, filepath.Join(bad, "README.txt")) != fileSum(t, filepath.Join(src, "README.txt")) {
			t.Error("README.txt of the malformed archive differs")
		}
		eventually(t, "log lines naming the damage", func() (bool, string) {
			s := m.stderr.String()
			return strings.Contains(s, missing) && strings.Contains(s, "/"+pxarBad+"/root.pxar/big.bin") &&
				strings.Contains(s, "/"+pxarBad+"/bad.pxar/sub/deep") && strings.Contains(s, "offset"), s
		})
		// One warning for the file, though the kernel's reads around the
		// chunk each failed at another offset.
		if n := strings.Count(m.stderr.String(), `level=WARN msg="read /`+pxarBad+`/root.pxar/big.bin`); n != 1 {
			t.Errorf("%d warnings for big.bin, want 1", n)
		}
	})
	m.stop()

	t.Run("with key", func(t *testing.T) {
		mk := startMount(t, ps.dir, ps.key.mountArgs(t)...)
		sameTree(t, src, mk.path(pxarEnc, "root.pxar"))
		mk.stop()
	})

	t.Run("no archives", func(t *testing.T) {
		mn := startMount(t, ps.dir, "--no-archives")
		_, err := os.Stat(mn.path(pxarV1, "root.pxar"))
		wantErrno(t, "stat root.pxar with --no-archives", err, syscall.ENOENT)
		// Nothing has xattrs: the kernel is told so once (ENOSYS) and
		// answers for itself.
		for range 2 {
			_, err = unix.Getxattr(mn.path(pxarV1, "notes"), "user.x", make([]byte, 8))
			wantErrno(t, "getxattr with --no-archives", err, syscall.ENOTSUP)
		}
		mn.stop()
	})

	diffDigests(t, before, treeDigest(t, ps.dir))
}

// pxarInodes checks the inode numbers of a mounted archive: every entry
// has its own, hardlinks share their target's, and a second walk sees the
// same numbers.
func pxarInodes(t *testing.T, root string) {
	t.Helper()
	walk := func() map[string]uint64 {
		out := map[string]uint64{}
		err := filepath.WalkDir(root, func(p string, d iofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[rel] = st.Ino
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := walk()
	links := map[string]string{"hard-readme": "README.txt", "sub/deep/nested-hard": "docs/f03"}
	byIno := map[uint64]string{}
	for p, ino := range first {
		if target, ok := links[p]; ok {
			if first[target] != ino {
				t.Errorf("hardlink %s: inode %d, its target %s has %d", p, ino, target, first[target])
			}
			continue
		}
		if other, dup := byIno[ino]; dup {
			t.Errorf("%s and %s share inode %d", p, other, ino)
		}
		byIno[ino] = p
	}
	if again := walk(); !maps.Equal(first, again) {
		t.Error("inode numbers changed between two walks")
	}
}

// The pxar crate's own archives of the reference tree (pxar-format.md
// appendix A.3, A.4), v1 and split, stored as archives: through the mount
// both show the same tree, with the ACLs, capabilities and hardlinks the
// appendix lists.
func TestPxarCrateFixtures(t *testing.T) {
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "pxar", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir, st := createTestStore(t)
	writePxarSnap(t, st, "500", 5, nil, []pxarStream{{"root.pxar.didx", fixture("pxar-crate-v1.pxar")}})
	writePxarSnap(t, st, "501", 6, nil, []pxarStream{{"root.mpxar.didx", fixture("pxar-crate-v2.mpxar")},
		{"root.ppxar.didx", fixture("pxar-crate-v2.ppxar")}})
	st.Close()
	m := startMount(t, dir)
	v1 := m.path("ct/500/2024-06-01T01:30:00Z/root.pxar")
	split := m.path("ct/501/2024-06-01T01:30:00Z/root.pxar")
	sameTree(t, v1, split)
	for _, root := range []string{v1, split} {
		acl := shell(t, root, "getfacl -n -P acl-dir")
		for _, want := range []string{"user:1002:r-x", "group:101:r--", "default:user:1001:rwx", "default:group:100:r-x"} {
			if !strings.Contains(acl, want) {
				t.Errorf("getfacl acl-dir: no %q in\n%s", want, acl)
			}
		}
		if got := shell(t, root, "getfattr -h -n user.comment --only-values xattr-file"); got != "hello" {
			t.Errorf("user.comment = %q", got)
		}
		if got := shell(t, root, "getcap bin/ping"); !strings.Contains(got, "bin/ping") {
			t.Errorf("getcap bin/ping: %q", got)
		}
		ino := func(rel string) uint64 {
			var s unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, rel), &s); err != nil {
				t.Fatal(err)
			}
			return s.Ino
		}
		if ino("hard-readme") != ino("README.txt") || ino("sub/deep/nested-hard") != ino("docs/f03") || ino("README.txt") == ino("docs/f03") {
			t.Error("hardlinks do not share their target's inode")
		}
		if got, err := os.ReadFile(filepath.Join(root, "big.bin")); err != nil || len(got) != 300000 {
			t.Errorf("big.bin: %d bytes, %v", len(got), err)
		}
	}
	m.stop()
}
