package fs

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
)

// TestRefusedCommitForgetsKernelSize: a write session whose close is
// refused leaves the kernel with the size of the session's text — here
// the reply to an ftruncate, valid for the TTL (10 minutes; no revalidator
// runs in this test). Once the text is dropped, stat must show the stored
// text's size again, not the refused one (forgetKernelSize).
func TestRefusedCommitForgetsKernelSize(t *testing.T) {
	e := newEnv(t)
	dir := mountEnv(t, e)
	p := filepath.Join(dir, "vm/100", tFirst, NotesName)
	// An open descriptor keeps the kernel's inode (and the size it holds):
	// a busy machine's dentry shrinker would otherwise make it forget the
	// file and look it up afresh.
	pin, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Close()
	// The close commits what this thread truncated (session.dueAtClose).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 3 {
		t.Fatalf("stat after ftruncate: %v, %v", fi, err)
	}
	gui := "changed in the GUI meanwhile\n"
	if err := e.store.SetNotes(e.ctx, datastore.Snapshot{Group: vm100, Time: tFirst}, gui); err != nil {
		t.Fatal(err)
	}
	// Past the 100 ms for which the snapshot's summary (the ftruncate's
	// attributes read it) is trusted without a stat.
	time.Sleep(200 * time.Millisecond)
	wantErrno(t, "close of a truncation over a GUI change", f.Close(), syscall.ESTALE)
	// The invalidation is sent in the background.
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == int64(len(gui)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stat after the refused close: size %d, want the stored text's %d", fi.Size(), len(gui))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != gui {
		t.Errorf("read %q, %v", b, err)
	}
}
