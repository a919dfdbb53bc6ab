package fs

import (
	"syscall"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// A close by a process that never wrote — the close-on-exec of a
// descriptor copy a child forked by the writer inherited — does not commit
// the text the writer is still writing; the writer's own close does. If
// the writer's text then fails (here: past the size limit), nothing of it
// was committed behind its back.
func TestNotesFlushByNonWriter(t *testing.T) {
	e := newEnv(t)
	n := e.node("vm/100/" + tFirst + "/notes")
	const writer, child = fuse.LockOwner(0x1111), fuse.LockOwner(0x2222)
	write := func(h fusefs.Handle, off int64, data string) error {
		var resp fuse.WriteResponse
		return h.(fusefs.HandleWriter).Write(e.ctx, &fuse.WriteRequest{Offset: off, Data: []byte(data),
			Flags: fuse.WriteLockOwner, LockOwner: writer}, &resp)
	}
	flush := func(h fusefs.Handle, owner fuse.LockOwner) error {
		return h.(fusefs.HandleFlusher).Flush(e.ctx, &fuse.FlushRequest{LockOwner: owner})
	}
	h, _, err := e.open(n, fuse.OpenWriteOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.setSize(n, 0, false); err != nil { // open(O_TRUNC)
		t.Fatal(err)
	}
	if err := write(h, 0, "the first half of a new text, "); err != nil {
		t.Fatal(err)
	}
	if err := flush(h, child); err != nil {
		t.Errorf("close by the child: %v", err)
	}
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("a close by a process that did not write committed %q", got)
	}
	wantErrno(t, "write past the limit", write(h, int64(e.fs.maxNotes)-1, "xy"), syscall.EFBIG)
	wantErrno(t, "the writer's close", flush(h, writer), syscall.EFBIG)
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != firstNotes {
		t.Errorf("after the failed text: %q on disk, want the old notes", got)
	}

	// The writer's own close commits, a bare truncation commits at any
	// close.
	h, _, _ = e.open(n, fuse.OpenWriteOnly)
	e.setSize(n, 0, false)
	write(h, 0, "complete\n")
	flush(h, child)
	if err := flush(h, writer); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "complete\n" {
		t.Errorf("the writer's close: %q", got)
	}
	h, _, _ = e.open(n, fuse.OpenWriteOnly)
	e.setSize(n, 0, false)
	if err := flush(h, child); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	if got := e.snapNotes(vm100, tFirst); got != "" {
		t.Errorf(": > notes: %q", got)
	}
}
