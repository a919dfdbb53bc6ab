package fs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

func (e *env) create(dir fusefs.Node, name string) (fusefs.Node, fusefs.Handle) {
	e.t.Helper()
	var resp fuse.CreateResponse
	n, h, err := dir.(fusefs.NodeCreater).Create(e.ctx, &fuse.CreateRequest{
		Name: name, Flags: fuse.OpenReadWrite | fuse.OpenCreate | fuse.OpenExclusive, Mode: 0o644,
	}, &resp)
	if err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
	return n, h
}

func (e *env) rename(dir fusefs.Node, from, to string) error {
	return dir.(fusefs.NodeRenamer).Rename(e.ctx, &fuse.RenameRequest{OldName: from, NewName: to}, dir)
}

// sed -i: create ./sedXXXXXX, write, rename it onto notes.
func TestScratchRenameOntoNotes(t *testing.T) {
	e := newEnv(t)
	dirPath := "vm/100/" + tFirst
	dir := e.node(dirPath)
	notes := e.node(dirPath + "/notes")
	tmp, h := e.create(dir, "sedAbC123")
	if err := e.write(h, 0, "via sed\n", 0); err != nil {
		t.Fatal(err)
	}
	if got := e.list(dirPath); !slices.Equal(got, []string{"manifest.json", "notes", "sedAbC123"}) {
		t.Errorf("listing with a scratch file %q", got)
	}
	if got := e.cat(dirPath + "/sedAbC123"); got != "via sed\n" {
		t.Errorf("scratch read %q", got)
	}
	if err := e.rename(dir, "sedAbC123", "notes"); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "via sed\n" {
		t.Errorf("notes after rename %q", got)
	}
	if got := e.list(dirPath); !slices.Equal(got, []string{"manifest.json", "notes"}) {
		t.Errorf("listing after rename %q", got)
	}
	// The kernel may still reach the scratch node under "notes" for a
	// moment: it answers as notes.
	if a, b := e.attr(tmp), e.attr(notes); a.Size != b.Size || a.Inode != b.Inode {
		t.Errorf("renamed scratch node attr %+v, notes %+v", a, b)
	}
	// Nothing of the scratch file reached the datastore.
	ents, _ := os.ReadDir(filepath.Join(e.base, "vm/100", tFirst))
	for _, d := range ents {
		if d.Name() != "index.json.blob" && d.Name() != "qemu-server.conf.blob" {
			t.Errorf("unexpected file in the datastore: %s", d.Name())
		}
	}
}

// vim rename mode / Emacs: notes -> notes~ (backup), write notes, rm notes~.
func TestScratchBackupRename(t *testing.T) {
	e := newEnv(t)
	dirPath := "vm/100/" + tFirst
	dir := e.node(dirPath)
	// vim's probe
	_, h := e.create(dir, "4913")
	e.release(h)
	if err := dir.(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: "4913"}); err != nil {
		t.Fatal(err)
	}
	if err := e.rename(dir, "notes", "notes~"); err != nil {
		t.Fatal(err)
	}
	if got := e.cat(dirPath + "/notes~"); got != firstNotes {
		t.Errorf("backup copy %q", got)
	}
	if got := e.cat(dirPath + "/notes"); got != firstNotes {
		t.Errorf("notes after renaming it away %q", got)
	}
	n := e.node(dirPath + "/notes")
	w, _, _ := e.open(n, fuse.OpenWriteOnly|fuse.OpenCreate)
	e.setSize(n, 0, true)
	e.write(w, 0, "saved\n", 0)
	if err := n.(fusefs.NodeFsyncer).Fsync(e.ctx, &fuse.FsyncRequest{}); err != nil {
		t.Fatal(err)
	}
	e.flush(w)
	e.release(w)
	if err := dir.(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: "notes~"}); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "saved\n" {
		t.Errorf("notes %q", got)
	}
	if got := e.list(dirPath); !slices.Equal(got, []string{"manifest.json", "notes"}) {
		t.Errorf("listing %q", got)
	}
}

// Emacs's lock symlink, vim's swap file with setattr, in a group directory.
func TestScratchSymlinkAndSetattr(t *testing.T) {
	e := newEnv(t)
	dir := e.node("vm/100")
	ln, err := dir.(fusefs.NodeSymlinker).Symlink(e.ctx, &fuse.SymlinkRequest{NewName: ".#notes", Target: "root@host.123:456"})
	if err != nil {
		t.Fatal(err)
	}
	target, err := ln.(fusefs.NodeReadlinker).Readlink(e.ctx, &fuse.ReadlinkRequest{})
	if err != nil || target != "root@host.123:456" {
		t.Errorf("readlink %q %v", target, err)
	}
	if a := e.attr(ln); a.Mode&os.ModeSymlink == 0 || a.Size != uint64(len(target)) {
		t.Errorf("symlink attr %+v", a)
	}
	swp, h := e.create(dir, ".notes.swp")
	e.write(h, 4096, "x", 0)
	set := &fuse.SetattrRequest{Valid: fuse.SetattrMode | fuse.SetattrUid | fuse.SetattrGid | fuse.SetattrSize, Mode: 0o600, Uid: 34, Gid: 34, Size: 10}
	if err := swp.(fusefs.NodeSetattrer).Setattr(e.ctx, set, &fuse.SetattrResponse{}); err != nil {
		t.Fatal(err)
	}
	if a := e.attr(swp); a.Mode != 0o600 || a.Uid != 34 || a.Size != 10 {
		t.Errorf("swap attr %+v", a)
	}
	if err := swp.(fusefs.NodeFsyncer).Fsync(e.ctx, &fuse.FsyncRequest{}); err != nil {
		t.Error(err)
	}
	if got := e.list("vm/100"); !slices.Contains(got, ".#notes") || !slices.Contains(got, ".notes.swp") {
		t.Errorf("listing %q", got)
	}
	// A scratch name cannot shadow a snapshot or owner.
	_, _, err = dir.(fusefs.NodeCreater).Create(e.ctx, &fuse.CreateRequest{Name: "2030-01-01T00:00:00Z", Mode: 0o644}, &fuse.CreateResponse{})
	wantErrno(t, "create a snapshot name", err, syscall.EPERM)
	_, err = dir.(fusefs.NodeSymlinker).Symlink(e.ctx, &fuse.SymlinkRequest{NewName: ".#notes", Target: "x"})
	wantErrno(t, "symlink over an existing one", err, syscall.EEXIST)
	// Renaming a symlink onto notes is refused.
	wantErrno(t, "rename symlink onto notes", e.rename(dir, ".#notes", "notes"), syscall.EPERM)
	// Scratch-to-scratch rename.
	if err := e.rename(dir, ".notes.swp", ".notes.swo"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.walk("vm/100/.notes.swp"); errnoOf(err) != syscall.ENOENT {
		t.Errorf("old name still there: %v", err)
	}
	if a := e.attr(e.node("vm/100/.notes.swo")); a.Size != 10 {
		t.Errorf("renamed scratch %+v", a)
	}
	// Scratch files die with their snapshot... or group.
	if got := e.cat("vm/100/notes"); got != groupText {
		t.Errorf("group notes %q", got)
	}
}

func TestScratchInvalidCommit(t *testing.T) {
	e := newEnv(t)
	dir := e.node("vm/100/" + tFirst)
	_, h := e.create(dir, "tmp")
	e.write(h, 0, "\xff", 0)
	wantErrno(t, "rename invalid UTF-8 onto notes", e.rename(dir, "tmp", "notes"), syscall.EILSEQ)
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("notes %q", got)
	}
	// The scratch file is still there to be fixed or removed.
	if _, err := e.walk("vm/100/" + tFirst + "/tmp"); err != nil {
		t.Error(err)
	}
}

func TestScratchDroppedWithSnapshot(t *testing.T) {
	e := newEnv(t)
	dir := e.node("vm/100/" + tSecond)
	e.create(dir, ".notes.swp")
	if err := e.node("vm/100").(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: tSecond, Dir: true}); err != nil {
		t.Fatal(err)
	}
	if sf := e.fs.scratchLookup("vm/100/"+tSecond, ".notes.swp"); sf != nil {
		t.Error("scratch file outlived its snapshot")
	}
}

// mv from another file system: unlink(notes) then open(notes,
// O_CREAT|O_EXCL), write, close. The unlink hides notes and writes nothing;
// the new file's text is committed on close.
func TestScratchUnlinkNotes(t *testing.T) {
	e := newEnv(t)
	dirPath := "vm/100/" + tFirst
	dir := e.node(dirPath)
	unlink := func(name string) error {
		return dir.(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: name})
	}
	if err := unlink("notes"); err != nil {
		t.Fatalf("rm notes: %v", err)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("stored notes after rm %q", got)
	}
	if got := e.list(dirPath); !slices.Equal(got, []string{"manifest.json"}) {
		t.Errorf("listing after rm notes %q", got)
	}
	if _, err := e.walk(dirPath + "/notes"); errnoOf(err) != syscall.ENOENT {
		t.Errorf("lookup notes after rm: %v", err)
	}
	wantErrno(t, "rm notes again", unlink("notes"), syscall.ENOENT)
	wantErrno(t, "rename unlinked notes", e.rename(dir, "notes", "notes~"), syscall.ENOENT)
	wantErrno(t, "rm manifest.json", unlink("manifest.json"), syscall.EPERM)

	n, h := e.create(dir, "notes")
	if a := e.attr(n); a.Size != 0 || a.Inode != inodeOf(dirPath+"/notes") {
		t.Errorf("created notes attr %+v", a)
	}
	if err := e.write(h, 0, "moved in\n", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "moved in\n" {
		t.Errorf("stored notes after create %q", got)
	}
	if got := e.list(dirPath); !slices.Equal(got, []string{"manifest.json", "notes"}) {
		t.Errorf("listing after create %q", got)
	}
	_, _, err := dir.(fusefs.NodeCreater).Create(e.ctx, &fuse.CreateRequest{Name: "notes", Mode: 0o644}, &fuse.CreateResponse{})
	wantErrno(t, "create existing notes", err, syscall.EPERM)

	// Unlinked, then created and closed empty: empty notes.
	if err := unlink("notes"); err != nil {
		t.Fatal(err)
	}
	_, h = e.create(dir, "notes")
	e.flush(h)
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "" {
		t.Errorf("stored notes after create of an empty file %q", got)
	}

	// Group notes: unlinked, then a scratch file renamed onto notes.
	group := e.node("vm/100")
	if err := group.(fusefs.NodeRemover).Remove(e.ctx, &fuse.RemoveRequest{Name: "notes"}); err != nil {
		t.Fatal(err)
	}
	if got := e.cat("vm/100/owner"); got == "" {
		t.Error("owner gone")
	}
	if slices.Contains(e.list("vm/100"), "notes") {
		t.Error("group notes listed after rm")
	}
	_, h = e.create(group, "notes.tmp")
	e.write(h, 0, "renamed in\n", 0)
	e.release(h)
	if err := e.rename(group, "notes.tmp", "notes"); err != nil {
		t.Fatal(err)
	}
	if got := e.cat("vm/100/notes"); got != "renamed in\n" {
		t.Errorf("group notes %q", got)
	}
	if got := e.list("vm/100"); !slices.Contains(got, "notes") || slices.Contains(got, "notes.tmp") {
		t.Errorf("group listing %q", got)
	}
	b, err := os.ReadFile(filepath.Join(e.base, "vm/100/notes"))
	if err != nil || string(b) != "renamed in\n" {
		t.Errorf("stored group notes %q, %v", b, err)
	}
}

// TestMountScratchBudget: the editors' scratch files of the whole mount
// share one byte budget: a file in a second directory is refused with
// ENOSPC once both together would pass it, and the bytes of a removed file
// come back.
func TestMountScratchBudget(t *testing.T) {
	const budget = 1 << 20
	e := newEnv(t, func(o *Options) { o.MaxScratchBytes = budget })
	mnt := mountEnv(t, e)
	a, b := "vm/100/"+tFirst+"/a.swp", "vm/100/"+tSecond+"/b.swp"
	mustSh(t, mnt, "head -c 600000 /dev/zero > "+a)
	out, err := sh(t, mnt, "head -c 600000 /dev/zero > "+b)
	if err == nil || !strings.Contains(out, "No space left on device") {
		t.Errorf("second 600 kB scratch file beside the first in a 1 MiB budget: %v\n%s", err, out)
	}
	mustSh(t, mnt, "rm -f "+a+" "+b)
	// The kernel forgets the removed file (and pbsfs gives its bytes back)
	// on its own time: try again until it did.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err = sh(t, mnt, "head -c 600000 /dev/zero > "+b)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bytes of a removed scratch file never came back: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := mustSh(t, mnt, "wc -c < "+b); strings.TrimSpace(got) != "600000" {
		t.Errorf("size %q", got)
	}
}
