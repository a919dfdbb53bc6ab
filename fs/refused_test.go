package fs

import (
	"syscall"
	"testing"
	"time"

	"bazil.org/fuse"

	"pbsfs/datastore"
)

// TestRefusedCommitForgetsKernelSize: a write session whose close is
// refused leaves the kernel with the size its writes gave the file. The
// attributes pbsfs last handed out may meanwhile describe the stored file —
// here the PBS GUI changed the notes and a stat answered with the new size
// while an append was in flight, a reply the kernel drops when a write
// completes in between. The next read open must not trust the kernel's
// size or pages (a page-cache read would be cut to, or padded with NULs up
// to, the refused text's size): it answers DirectIO.
func TestRefusedCommitForgetsKernelSize(t *testing.T) {
	e := newEnv(t)
	p := "vm/100/" + tFirst + "/notes"
	n := e.node(p)
	sn := datastore.Snapshot{Group: vm100, Time: tFirst}

	w, _, err := e.open(n, fuse.OpenWriteOnly|fuse.OpenAppend)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetNotes(e.ctx, sn, "changed in the GUI meanwhile\n"); err != nil {
		t.Fatal(err)
	}
	// A fresh stat: not the lookup's attributes, nor the manifest summary
	// trusted for 100 ms.
	time.Sleep(200 * time.Millisecond)
	n.(*notesFile).dropPrimed()
	e.attr(n) // whose reply the kernel dropped
	if err := e.write(w, 0, "appended\n", fuse.OpenAppend); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "close of an append over a GUI change", e.flush(w), syscall.ESTALE)
	if err := e.release(w); err != nil {
		t.Logf("release: %v", err)
	}
	r, flags, err := e.open(n, fuse.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if flags&fuse.OpenDirectIO == 0 {
		t.Errorf("read open after a refused commit: flags %v, want DirectIO (the kernel's size is the refused text's)", flags)
	}
	if got := e.read(r); got != "changed in the GUI meanwhile\n" {
		t.Errorf("read %q", got)
	}
}
