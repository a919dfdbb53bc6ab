package fs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	"pbsfs/lock"
)

func timeOf(s string) (int64, error) {
	t, err := time.Parse("2006-01-02T15:04:05Z", s)
	return t.Unix(), err
}

func TestInodes(t *testing.T) {
	if got := inodeOf(""); got != rootInode {
		t.Errorf("root inode %d", got)
	}
	a, b := inodeOf("vm/100"), inodeOf("vm/100")
	if a != b || a < 2 {
		t.Errorf("inode of vm/100: %d, %d", a, b)
	}
	seen := map[uint64]string{}
	for _, p := range []string{"vm", "ct", "host", "ns", "vm/100", "vm/100/notes", "vm/100/owner",
		"vm/100/" + tFirst, "vm/100/" + tFirst + "/notes", "vm/100/" + tFirst + "/manifest.json", "ns/prod", "ns/prod/vm"} {
		ino := inodeOf(p)
		if ino < 2 {
			t.Errorf("inode of %s is %d", p, ino)
		}
		if other, dup := seen[ino]; dup {
			t.Errorf("inode collision %s / %s", p, other)
		}
		seen[ino] = p
	}
}

func TestListing(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		path string
		want []string
	}{
		{"", []string{"ct", "ns", "vm"}}, // .chunks, .lock hidden
		{"vm", []string{"100"}},
		{"vm/100", []string{"notes", "owner", tCorrupt, tFirst, tSecond, tUnfinished}},
		{"vm/100/" + tFirst, []string{"manifest.json", "notes"}},
		{"vm/100/" + tCorrupt, []string{"manifest.json", "notes"}},
		{"vm/100/" + tUnfinished, nil},
		{"ns", []string{"prod"}},
		{"ns/prod", []string{"host", "ns"}},
		{"ns/prod/ns", []string{"db"}},
		{"ns/prod/ns/db", []string{"vm"}},
		{"ns/prod/ns/db/vm/300", []string{"notes", "owner", "2024-04-04T04:04:04Z"}},
	}
	for _, c := range cases {
		if got := e.list(c.path); !slices.Equal(got, c.want) {
			t.Errorf("ls /%s = %q, want %q", c.path, got, c.want)
		}
	}
	// Inode numbers in listings are those of the nodes.
	ents, err := e.node("vm/100").(fusefs.HandleReadDirAller).ReadDirAll(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if d.Name == "." || d.Name == ".." {
			continue
		}
		if a := e.attr(e.node("vm/100/" + d.Name)); a.Inode != d.Inode {
			t.Errorf("%s: dirent inode %d, attr inode %d", d.Name, d.Inode, a.Inode)
		}
	}
}

func TestLookupMissing(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{".chunks", ".lock", "xx", "vm/999", "vm/100/" + "2030-01-01T00:00:00Z",
		"vm/100/4913", "vm/100/" + tFirst + "/.notes.swp", "vm/100/" + tFirst + "/qemu-server.conf.blob",
		"vm/100/" + tFirst + "/index.json.blob", "host", "ns/nope", "vm/100/" + tUnfinished + "/notes",
		"vm/100/" + tUnfinished + "/manifest.json"} {
		_, err := e.walk(p)
		wantErrno(t, "lookup "+p, err, syscall.ENOENT)
	}
	// A failed lookup leaves nothing cached.
	d := e.node("vm/100").(*groupDir)
	if _, ok := d.kids.peek("2030-01-01T00:00:00Z"); ok {
		t.Error("missing snapshot was cached")
	}
}

func TestCorruptSnapshot(t *testing.T) {
	e := newEnv(t)
	for _, f := range []string{"notes", "manifest.json"} {
		_, err := e.walk("vm/100/" + tCorrupt + "/" + f)
		wantErrno(t, "lookup corrupt "+f, err, syscall.EIO)
	}
	// Siblings are unaffected.
	if got := e.cat("vm/100/" + tFirst + "/notes"); got != firstNotes {
		t.Errorf("sibling notes %q", got)
	}
}

func TestStableNodes(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"vm", "vm/100", "vm/100/notes", "vm/100/owner", "vm/100/" + tFirst,
		"vm/100/" + tFirst + "/notes", "vm/100/" + tFirst + "/manifest.json", "ns/prod"} {
		a, b := e.node(p), e.node(p)
		if a != b {
			t.Errorf("%s: two lookups gave two nodes", p)
		}
		a.(fusefs.NodeForgetter).Forget()
		if c := e.node(p); c == a {
			t.Errorf("%s: same node after Forget", p)
		}
	}
}

func TestAttrs(t *testing.T) {
	e := newEnv(t)
	sn := datastore.Snapshot{Group: vm100, Time: tFirst}
	blob, err := os.Stat(filepath.Join(e.base, sn.Dir(), datastore.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := blob.Sys().(*syscall.Stat_t).Uid, blob.Sys().(*syscall.Stat_t).Gid

	notes := e.attr(e.node("vm/100/" + tFirst + "/notes"))
	if notes.Size != uint64(len(firstNotes)) || notes.Mode != 0o644 || !notes.Mtime.Equal(blob.ModTime()) ||
		notes.Uid != uid || notes.Gid != gid || notes.Valid != DefaultTTL || notes.Nlink != 1 {
		t.Errorf("notes attr %+v", notes)
	}
	mj := e.attr(e.node("vm/100/" + tFirst + "/manifest.json"))
	body := e.cat("vm/100/" + tFirst + "/manifest.json")
	if mj.Size != uint64(len(body)) || mj.Mode != 0o444 || !strings.HasSuffix(body, "}\n") || !strings.Contains(body, `"notes": "first line\nsecond line\n"`) {
		t.Errorf("manifest.json attr %+v body %q", mj, body)
	}
	owner := e.attr(e.node("vm/100/owner"))
	if got := e.cat("vm/100/owner"); got != "root@pam\n" || owner.Size != uint64(len(got)) || owner.Mode != 0o444 {
		t.Errorf("owner %q attr %+v", got, owner)
	}
	gn := e.attr(e.node("vm/100/notes"))
	gfile, _ := os.Stat(filepath.Join(e.base, "vm/100/notes"))
	if got := e.cat("vm/100/notes"); got != groupText || gn.Size != uint64(len(got)) || gn.Mode != 0o644 || !gn.Mtime.Equal(gfile.ModTime()) {
		t.Errorf("group notes %q attr %+v", got, gn)
	}
	// A group without notes file shows empty notes with the directory's times.
	ctNotes := e.attr(e.node("ct/200/notes"))
	if ctNotes.Size != 0 || ctNotes.Mode != 0o644 {
		t.Errorf("absent group notes attr %+v", ctNotes)
	}
	dir := e.attr(e.node("vm/100/" + tFirst))
	dst, _ := os.Stat(filepath.Join(e.base, sn.Dir()))
	if dir.Mode != os.ModeDir|0o755 || !dir.Mtime.Equal(dst.ModTime()) || dir.Inode != inodeOf("vm/100/"+tFirst) {
		t.Errorf("snapshot dir attr %+v", dir)
	}
	root := e.attr(e.fs.root)
	if root.Inode != 1 || root.Mode != os.ModeDir|0o755 {
		t.Errorf("root attr %+v", root)
	}
}

func TestReadOnlyMount(t *testing.T) {
	e := newEnv(t, readOnly)
	if a := e.attr(e.node("vm/100/" + tFirst + "/notes")); a.Mode != 0o444 {
		t.Errorf("notes mode %v", a.Mode)
	}
	if a := e.attr(e.node("vm/100")); a.Mode != os.ModeDir|0o555 {
		t.Errorf("dir mode %v", a.Mode)
	}
	notes := e.node("vm/100/" + tFirst + "/notes")
	_, _, err := e.open(notes, fuse.OpenWriteOnly)
	wantErrno(t, "open notes for write", err, syscall.EROFS)
	wantErrno(t, "truncate notes", e.setSize(notes, 0, false), syscall.EROFS)
	_, _, err = e.open(e.node("vm/100/"+tFirst+"/manifest.json"), fuse.OpenWriteOnly)
	wantErrno(t, "open manifest for write", err, syscall.EROFS)
	err = e.node("vm/100").(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: tFirst, Dir: true})
	wantErrno(t, "rmdir", err, syscall.EROFS)
	_, _, err = e.node("vm/100/"+tFirst).(fusefs.NodeCreater).Create(e.ctx, &fuse.CreateRequest{Name: "x", Mode: 0o644}, &fuse.CreateResponse{})
	wantErrno(t, "create", err, syscall.EROFS)
	if got := e.cat("vm/100/" + tFirst + "/notes"); got != firstNotes {
		t.Errorf("read-only read %q", got)
	}
}

func TestReadOnlyFiles(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"vm/100/" + tFirst + "/manifest.json", "vm/100/owner"} {
		n := e.node(p)
		for _, fl := range []fuse.OpenFlags{fuse.OpenWriteOnly, fuse.OpenReadWrite, fuse.OpenReadOnly | fuse.OpenTruncate} {
			_, _, err := e.open(n, fl)
			wantErrno(t, "open "+p, err, syscall.EACCES)
		}
		wantErrno(t, "truncate "+p, e.setSize(n, 0, false), syscall.EACCES)
		wantErrno(t, "fsync "+p, n.(fusefs.NodeFsyncer).Fsync(e.ctx, &fuse.FsyncRequest{}), 0)
		acc := n.(fusefs.NodeAccesser)
		wantErrno(t, "access W_OK "+p, acc.Access(e.ctx, &fuse.AccessRequest{Mask: 2}), syscall.EACCES)
		wantErrno(t, "access R_OK "+p, acc.Access(e.ctx, &fuse.AccessRequest{Mask: 4}), 0)
	}
}

// echo x > notes: OPEN(O_WRONLY) + SETATTR(size=0, fh) + WRITE + FLUSH + RELEASE.
func TestNotesOverwrite(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	h, fl, err := e.open(n, fuse.OpenWriteOnly)
	if err != nil {
		t.Fatal(err)
	}
	if fl&fuse.OpenDirectIO == 0 {
		t.Error("notes open without OpenDirectIO")
	}
	if err := e.setSize(n, 0, true); err != nil {
		t.Fatal(err)
	}
	if a := e.attr(n); a.Size != 0 {
		t.Errorf("size after truncate %d", a.Size)
	}
	if err := e.write(h, 0, "new text\n", fuse.OpenWriteOnly); err != nil {
		t.Fatal(err)
	}
	if a := e.attr(n); a.Size != uint64(len("new text\n")) {
		t.Errorf("size while dirty %d", a.Size)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("committed before flush: %q", got)
	}
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "new text\n" {
		t.Errorf("after flush %q", got)
	}
	if err := e.release(h); err != nil {
		t.Fatal(err)
	}
	if got := e.cat("vm/100/" + tFirst + "/notes"); got != "new text\n" {
		t.Errorf("read back %q", got)
	}
	if !strings.Contains(e.cat("vm/100/"+tFirst+"/manifest.json"), `"notes": "new text\n"`) {
		t.Error("manifest.json does not show the new notes")
	}
}

// echo x >> notes: OPEN(O_WRONLY|O_APPEND) + WRITE(offset = kernel's idea) + FLUSH.
func TestNotesAppend(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	h, _, err := e.open(n, fuse.OpenWriteOnly|fuse.OpenAppend)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's offset may be stale (0 here); the write still appends.
	if err := e.write(h, 0, "third\n", fuse.OpenWriteOnly|fuse.OpenAppend); err != nil {
		t.Fatal(err)
	}
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != firstNotes+"third\n" {
		t.Errorf("after append %q", got)
	}
}

// Partial overwrite and a write past the end (gap filled with NULs).
func TestNotesWriteAt(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tSecond + "/notes")
	h, _, err := e.open(n, fuse.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.write(h, 0, "abcdef", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.write(h, 2, "XY", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.write(h, 8, "!", 0); err != nil {
		t.Fatal(err)
	}
	if got := e.read(h); got != "abXYef\x00\x00!" {
		t.Errorf("read through rw handle %q", got)
	}
	if err := n.(fusefs.NodeFsyncer).Fsync(e.ctx, &fuse.FsyncRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tSecond); got != "abXYef\x00\x00!" {
		t.Errorf("after fsync %q", got)
	}
	if err := e.release(h); err != nil {
		t.Fatal(err)
	}
}

// A text built on the old notes must not overwrite an edit made meanwhile.
func TestNotesStale(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	h, _, err := e.open(n, fuse.OpenWriteOnly|fuse.OpenAppend)
	if err != nil {
		t.Fatal(err)
	}
	sn := datastore.Snapshot{Group: vm100, Time: tFirst}
	if err := e.store.SetNotes(context.Background(), sn, "changed in the GUI"); err != nil {
		t.Fatal(err)
	}
	if err := e.write(h, 0, "more\n", fuse.OpenAppend); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "flush over a concurrent edit", e.flush(h), syscall.ESTALE)
	// The failed close dropped the text: release writes nothing, silently.
	if err := e.release(h); err != nil {
		t.Errorf("release after a failed close: %v, want nil (nothing left to write)", err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "changed in the GUI" {
		t.Errorf("concurrent edit lost: %q", got)
	}
	// A full replacement (truncate first) is not built on the old text.
	h, _, err = e.open(n, fuse.OpenWriteOnly)
	if err != nil {
		t.Fatal(err)
	}
	e.store.SetNotes(context.Background(), sn, "changed again")
	if err := e.setSize(n, 0, true); err != nil {
		t.Fatal(err)
	}
	e.write(h, 0, "replaced", 0)
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "replaced" {
		t.Errorf("replace %q", got)
	}
}

// truncate -s N notes: SETATTR(size) without a handle commits at once.
func TestNotesTruncateWithoutHandle(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	if err := e.setSize(n, 5, false); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "first" {
		t.Errorf("after truncate -s5 %q", got)
	}
	if err := e.setSize(n, 7, false); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "first\x00\x00" {
		t.Errorf("after truncate -s7 %q", got)
	}
	if err := e.setSize(n, 0, false); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "" {
		t.Errorf("after truncate -s0 %q", got)
	}
	if a := e.attr(n); a.Size != 0 {
		t.Errorf("size %d", a.Size)
	}
	// With a writer open, the truncation goes into its session and is
	// committed right away.
	h, _, _ := e.open(n, fuse.OpenWriteOnly)
	e.write(h, 0, "hello", 0)
	if err := e.setSize(n, 2, false); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "he" {
		t.Errorf("truncate with a writer open: %q", got)
	}
	e.release(h)
}

// open(O_TRUNC) reaches us as OPEN without O_TRUNC followed by SETATTR(size
// 0) without a handle. Nothing may be committed before the new text is:
// until then PBS must see the old notes, and if the new text cannot be
// written (not UTF-8 here; disk full, a crash) the old notes must stay.
func TestNotesOpenTruncKeepsOldText(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	before := e.snapNotes(vm100, tFirst)
	if before == "" {
		t.Fatal("fixture has no notes")
	}
	h, _, err := e.open(n, fuse.OpenWriteOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.setSize(n, 0, false); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != before {
		t.Errorf("after the O_TRUNC setattr: %q on disk, want the old %q", got, before)
	}
	if a := e.attr(n); a.Size != 0 {
		t.Errorf("size after the O_TRUNC setattr %d, want 0", a.Size)
	}
	if err := e.write(h, 0, "bad \xff\n", 0); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "flush of invalid UTF-8", e.flush(h), syscall.EILSEQ)
	if err := e.release(h); err != nil {
		t.Errorf("release after a failed close: %v, want nil (text dropped)", err)
	}
	if got := e.snapNotes(vm100, tFirst); got != before {
		t.Errorf("after a refused O_TRUNC rewrite: %q on disk, want the old %q", got, before)
	}
	// The usual case: the new text replaces the old one in one commit.
	h, _, err = e.open(n, fuse.OpenWriteOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.setSize(n, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := e.write(h, 0, "new\n", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "new\n" {
		t.Errorf("after an O_TRUNC rewrite: %q", got)
	}
}

func TestNotesInvalid(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	h, _, _ := e.open(n, fuse.OpenWriteOnly)
	e.setSize(n, 0, true)
	e.write(h, 0, "bad \xff\xfe", 0)
	wantErrno(t, "flush invalid UTF-8", e.flush(h), syscall.EILSEQ)
	if err := e.release(h); err != nil {
		t.Errorf("release after a failed close: %v, want nil (text dropped)", err)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("invalid text written: %q", got)
	}

	h, _, _ = e.open(n, fuse.OpenWriteOnly)
	wantErrno(t, "write past the limit", e.write(h, int64(e.fs.maxNotes), "x", 0), syscall.EFBIG)
	wantErrno(t, "extend past the limit", e.setSize(n, uint64(e.fs.maxNotes)+1, true), syscall.EFBIG)
	if err := e.release(h); err != nil {
		t.Errorf("release of an unchanged session: %v", err)
	}
}

// A text that runs past the size limit (cat big > notes: writes succeed
// until one crosses the limit and fails with EFBIG, then close) is not
// committed cut off: close fails with EFBIG and the old notes stay. A
// truncation afterwards starts over.
func TestNotesTooBigNotCommitted(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	h, _, err := e.open(n, fuse.OpenWriteOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.setSize(n, 0, false); err != nil { // open(O_TRUNC)
		t.Fatal(err)
	}
	if err := e.write(h, 0, "the start of a long text", 0); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "write past the limit", e.write(h, int64(e.fs.maxNotes)-1, "xy", 0), syscall.EFBIG)
	wantErrno(t, "fsync of a cut-off text", n.(fusefs.NodeFsyncer).Fsync(e.ctx, &fuse.FsyncRequest{}), syscall.EFBIG)
	wantErrno(t, "flush of a cut-off text", e.flush(h), syscall.EFBIG)
	if err := e.release(h); err != nil {
		t.Errorf("release after a failed close: %v, want nil (text dropped)", err)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("cut-off text written: %.40q", got)
	}
	// Same session, truncated and written again: committed.
	h, _, _ = e.open(n, fuse.OpenWriteOnly)
	e.setSize(n, 0, false)
	e.write(h, 0, "abc", 0)
	wantErrno(t, "write past the limit", e.write(h, int64(e.fs.maxNotes), "x", 0), syscall.EFBIG)
	if err := e.setSize(n, 0, true); err != nil {
		t.Fatal(err)
	}
	e.write(h, 0, "short\n", 0)
	if err := e.flush(h); err != nil {
		t.Errorf("flush after starting over: %v", err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "short\n" {
		t.Errorf("after starting over: %q", got)
	}
}

// vim: OPEN(O_WRONLY) + SETATTR(size 0, fh) + WRITE + FSYNC + SETATTR(mode) + FLUSH + RELEASE.
func TestNotesVimCopyMode(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	ino := e.attr(n).Inode
	h, _, _ := e.open(n, fuse.OpenWriteOnly|fuse.OpenCreate)
	e.setSize(n, 0, true)
	e.write(h, 0, "edited in vim\n", 0)
	if err := n.(fusefs.NodeFsyncer).Fsync(e.ctx, &fuse.FsyncRequest{}); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	a := e.attr(n)
	chmod := &fuse.SetattrRequest{Valid: fuse.SetattrMode | fuse.SetattrHandle, Mode: 0o600}
	if err := n.(fusefs.NodeSetattrer).Setattr(e.ctx, chmod, &fuse.SetattrResponse{}); err != nil {
		t.Errorf("fchmod: %v", err)
	}
	chown := &fuse.SetattrRequest{Valid: fuse.SetattrUid | fuse.SetattrGid, Uid: a.Uid, Gid: a.Gid}
	if err := n.(fusefs.NodeSetattrer).Setattr(e.ctx, chown, &fuse.SetattrResponse{}); err != nil {
		t.Errorf("fchown to the same owner: %v", err)
	}
	chown.Uid = a.Uid + 1
	wantErrno(t, "chown to another owner", n.(fusefs.NodeSetattrer).Setattr(e.ctx, chown, &fuse.SetattrResponse{}), syscall.EPERM)
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "edited in vim\n" {
		t.Errorf("after vim save %q", got)
	}
	if a := e.attr(n); a.Inode != ino || a.Mode != 0o644 {
		t.Errorf("inode or mode changed: %+v", a)
	}
}

func TestGroupNotesWrite(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"vm/100/notes", "ct/200/notes"} {
		n := e.node(p)
		h, _, err := e.open(n, fuse.OpenWriteOnly)
		if err != nil {
			t.Fatal(err)
		}
		e.setSize(n, 0, true)
		e.write(h, 0, "new group notes ✓", 0)
		if err := e.flush(h); err != nil {
			t.Fatal(err)
		}
		e.release(h)
		if got := e.cat(p); got != "new group notes ✓" {
			t.Errorf("%s: %q", p, got)
		}
		data, err := os.ReadFile(filepath.Join(e.base, p))
		if err != nil || string(data) != "new group notes ✓" {
			t.Errorf("%s on disk: %q %v", p, data, err)
		}
	}
}

// A reader opened while a writer has uncommitted text sees that text, as
// with a local file; a reader opened before keeps what it saw.
func TestNotesReadersAndWriters(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	r1, _, _ := e.open(n, fuse.OpenReadOnly)
	w, _, _ := e.open(n, fuse.OpenWriteOnly)
	e.setSize(n, 0, true)
	e.write(w, 0, "pending", 0)
	r2, _, _ := e.open(n, fuse.OpenReadOnly)
	if got := e.read(r1); got != firstNotes {
		t.Errorf("early reader %q", got)
	}
	if got := e.read(r2); got != "pending" {
		t.Errorf("late reader %q", got)
	}
	// Closing a reader commits nothing.
	if err := e.flush(r2); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("reader's close committed: %q", got)
	}
	// Two writers share the session.
	w2, _, _ := e.open(n, fuse.OpenWriteOnly|fuse.OpenAppend)
	e.write(w2, 0, "+more", fuse.OpenAppend)
	if err := e.release(w2); err != nil {
		t.Fatal(err)
	}
	if err := e.flush(w); err != nil {
		t.Fatal(err)
	}
	if err := e.release(w); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "pending+more" {
		t.Errorf("shared session %q", got)
	}
}

func TestRemove(t *testing.T) {
	e := newEnv(t)
	group := e.node("vm/100").(fusefs.NodeRemover)
	rmdir := func(dir fusefs.NodeRemover, name string) error {
		return dir.Remove(e.ctx, &fuse.RemoveRequest{Name: name, Dir: true})
	}
	unlink := func(dir fusefs.NodeRemover, name string) error {
		return dir.Remove(e.ctx, &fuse.RemoveRequest{Name: name})
	}
	// rm notes: TestScratchUnlinkNotes.
	wantErrno(t, "rm owner", unlink(group, "owner"), syscall.EPERM)
	snap := e.node("vm/100/" + tFirst).(fusefs.NodeRemover)
	wantErrno(t, "rm manifest.json", unlink(snap, "manifest.json"), syscall.EPERM)
	wantErrno(t, "rm missing", unlink(snap, "nothing"), syscall.ENOENT)

	// In use: a reader holds the snapshot lock shared.
	lk, err := e.store.Locker().LockSnapshot(lock.Path{Rel: "vm/100/" + tFirst}, true)
	if err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "rmdir snapshot in use", rmdir(group, tFirst), syscall.EBUSY)
	lk.Unlock()
	wantErrno(t, "rmdir protected", rmdir(e.node("ct/200").(fusefs.NodeRemover), "2024-01-01T00:00:00Z"), syscall.EPERM)
	wantErrno(t, "rmdir non-empty group", rmdir(e.node("vm").(fusefs.NodeRemover), "100"), syscall.ENOTEMPTY)
	wantErrno(t, "rmdir type dir", rmdir(e.fs.root, "vm"), syscall.EPERM)

	for _, tm := range []string{tFirst, tSecond, tUnfinished, tCorrupt} {
		if err := rmdir(group, tm); err != nil {
			t.Fatalf("rmdir %s: %v", tm, err)
		}
		if _, err := e.walk("vm/100/" + tm); errnoOf(err) != syscall.ENOENT {
			t.Errorf("%s still there: %v", tm, err)
		}
	}
	// The run scheme removes the emptied group, as PBS does.
	if _, err := e.walk("vm/100"); errnoOf(err) != syscall.ENOENT {
		t.Errorf("emptied group still there: %v", err)
	}
	if got := e.list("vm"); len(got) != 0 {
		t.Errorf("vm lists %q", got)
	}
}

func TestRemoveEmptyGroup(t *testing.T) {
	e := newEnv(t)
	g := datastore.Group{Type: "host", ID: "empty"}
	if err := e.store.CreateGroup(g, "root@pam"); err != nil {
		t.Fatal(err)
	}
	host := e.node("host")
	if err := host.(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: "empty", Dir: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.base, g.Dir())); !os.IsNotExist(err) {
		t.Errorf("group dir still there: %v", err)
	}
}

// Operations bazil would answer with EIO or a silent success get deliberate
// errnos.
func TestDeliberateErrnos(t *testing.T) {
	e := newEnv(t)
	root := e.fs.root
	_, err := root.Mkdir(e.ctx, &fuse.MkdirRequest{Name: "x"})
	wantErrno(t, "mkdir in root", err, syscall.EPERM)
	_, _, err = root.Create(e.ctx, &fuse.CreateRequest{Name: "x", Mode: 0o644}, &fuse.CreateResponse{})
	wantErrno(t, "create in root", err, syscall.EPERM)
	_, err = root.Symlink(e.ctx, &fuse.SymlinkRequest{NewName: "x", Target: "y"})
	wantErrno(t, "symlink in root", err, syscall.EPERM)
	wantErrno(t, "rename in root", root.Rename(e.ctx, &fuse.RenameRequest{OldName: "vm", NewName: "x"}, root), syscall.EPERM)
	wantErrno(t, "chmod root", root.Setattr(e.ctx, &fuse.SetattrRequest{Valid: fuse.SetattrMode}, &fuse.SetattrResponse{}), syscall.EPERM)
	wantErrno(t, "touch root", root.Setattr(e.ctx, &fuse.SetattrRequest{Valid: fuse.SetattrMtime}, &fuse.SetattrResponse{}), 0)
	snap := e.node("vm/100/" + tFirst).(*snapDir)
	_, err = snap.Mkdir(e.ctx, &fuse.MkdirRequest{Name: "x"})
	wantErrno(t, "mkdir in snapshot", err, syscall.EPERM)
	_, err = snap.Link(e.ctx, &fuse.LinkRequest{NewName: "x"}, snap)
	wantErrno(t, "link in snapshot", err, syscall.EPERM)
	_, _, err = snap.Create(e.ctx, &fuse.CreateRequest{Name: "manifest.json", Mode: 0o644}, &fuse.CreateResponse{})
	wantErrno(t, "create manifest.json", err, syscall.EPERM)
	err = snap.Rename(e.ctx, &fuse.RenameRequest{OldName: "manifest.json", NewName: "x"}, snap)
	wantErrno(t, "rename manifest.json", err, syscall.EPERM)
	err = snap.Rename(e.ctx, &fuse.RenameRequest{OldName: "notes", NewName: "notes"}, e.node("vm/100/"+tSecond))
	wantErrno(t, "rename across directories", err, syscall.EXDEV)
}
