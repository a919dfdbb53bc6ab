package fs

import (
	"syscall"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// Truncations without a file handle while a writer has the notes open: the
// one open(O_TRUNC) sends (size 0, from the opening thread, right after the
// OPEN) waits for the session's commit; anybody else's truncate -s is
// committed at once, with its errors (EILSEQ for a cut character), as when
// nobody writes.
func TestNotesTruncateWhileOpen(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	open := func(pid uint32) fusefs.Handle {
		t.Helper()
		var resp fuse.OpenResponse
		h, err := n.(fusefs.NodeOpener).Open(e.ctx, &fuse.OpenRequest{Header: fuse.Header{Pid: pid}, Flags: fuse.OpenWriteOnly}, &resp)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	truncate := func(pid uint32, size uint64) error {
		return n.(fusefs.NodeSetattrer).Setattr(e.ctx, &fuse.SetattrRequest{Header: fuse.Header{Pid: pid},
			Valid: fuse.SetattrSize, Size: size}, &fuse.SetattrResponse{})
	}

	// open(O_TRUNC) by thread 7: nothing on disk until the close.
	h := open(7)
	if err := truncate(7, 0); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("after open(O_TRUNC): %q on disk", got)
	}
	e.write(h, 0, "Grüße\n", 0)
	if err := e.flush(h); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "Grüße\n" {
		t.Errorf("after the close: %q", got)
	}
	// Its release has not come yet: thread 9's truncate -s is someone
	// else's, committed at once — or refused at once.
	wantErrno(t, "truncate -s 3 (inside ü)", truncate(9, 3), syscall.EILSEQ)
	if got := e.snapNotes(vm100, tFirst); got != "Grüße\n" {
		t.Errorf("after a refused truncate: %q", got)
	}
	if err := truncate(9, 1); err != nil {
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "G" {
		t.Errorf("after truncate -s 1 with a writer open: %q", got)
	}
	if err := truncate(7, 0); err != nil { // the opener, but not right after an open
		t.Fatal(err)
	}
	if got := e.snapNotes(vm100, tFirst); got != "" {
		t.Errorf("after a later truncate -s 0 by the opener: %q", got)
	}
	e.release(h)
}

// A text dropped because it went past the size limit leaves nothing behind
// for the next writer, even while its release is still on the way.
func TestNotesNextWriterAfterTooBig(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	a, _, _ := e.open(n, fuse.OpenWriteOnly)
	e.setSize(n, 0, false)
	wantErrno(t, "write past the limit", e.write(a, int64(e.fs.maxNotes)-1, "xy", 0), syscall.EFBIG)
	e.write(a, 0, "partial", 0)
	wantErrno(t, "close of the cut-off text", e.flush(a), syscall.EFBIG)
	b, _, _ := e.open(n, fuse.OpenWriteOnly) // before a's release
	e.setSize(n, 0, false)
	e.write(b, 0, "small\n", 0)
	if err := e.flush(b); err != nil {
		t.Errorf("the next writer's close: %v", err)
	}
	e.release(a)
	e.release(b)
	if got := e.snapNotes(vm100, tFirst); got != "small\n" {
		t.Errorf("notes %q", got)
	}
}
