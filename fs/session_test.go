package fs

import (
	"syscall"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// One test per row of the write-session table in fs/README.md ("Writing
// notes"), each driving the handlers in the order a real program's system
// calls reach them. (Rows covered elsewhere name their test in the README.)

// proc is a process with one thread driving a notes node: pid is the
// thread the kernel names in requests, own the lock owner (its
// files_struct) it sends with writes and closes.
type proc struct {
	e   *env
	n   fusefs.Node
	pid uint32
	own fuse.LockOwner
}

func (e *env) proc(p string, pid uint32) proc {
	return proc{e: e, n: e.node(p), pid: pid, own: fuse.LockOwner(pid) << 8}
}

// open is open(2) for writing; with trunc, the kernel's O_TRUNC follows as
// a SETATTR(size 0) without a handle from the same thread.
func (p proc) open(flags fuse.OpenFlags, trunc bool) fusefs.Handle {
	p.e.t.Helper()
	var resp fuse.OpenResponse
	h, err := p.n.(fusefs.NodeOpener).Open(p.e.ctx, &fuse.OpenRequest{Header: fuse.Header{Pid: p.pid}, Flags: flags}, &resp)
	if err != nil {
		p.e.t.Fatalf("open: %v", err)
	}
	if trunc {
		if err := p.setattr(0, false); err != nil {
			p.e.t.Fatalf("O_TRUNC: %v", err)
		}
	}
	return h
}

// setattr is a size change: ftruncate (with a handle) or truncate(2).
func (p proc) setattr(size uint64, handle bool) error {
	req := &fuse.SetattrRequest{Header: fuse.Header{Pid: p.pid}, Valid: fuse.SetattrSize, Size: size}
	if handle {
		req.Valid |= fuse.SetattrHandle
		req.Handle = 1
	}
	return p.n.(fusefs.NodeSetattrer).Setattr(p.e.ctx, req, &fuse.SetattrResponse{})
}

func (p proc) write(h fusefs.Handle, off int64, data string) error {
	var resp fuse.WriteResponse
	return h.(fusefs.HandleWriter).Write(p.e.ctx, &fuse.WriteRequest{Header: fuse.Header{Pid: p.pid},
		Offset: off, Data: []byte(data), Flags: fuse.WriteLockOwner, LockOwner: p.own}, &resp)
}

// close is close(2) of one descriptor: a FLUSH.
func (p proc) close(h fusefs.Handle) error {
	return h.(fusefs.HandleFlusher).Flush(p.e.ctx, &fuse.FlushRequest{Header: fuse.Header{Pid: p.pid}, LockOwner: p.own})
}

func (p proc) fsync() error {
	return p.n.(fusefs.NodeFsyncer).Fsync(p.e.ctx, &fuse.FsyncRequest{Header: fuse.Header{Pid: p.pid}})
}

// stored is what the store holds for the first snapshot of vm/100.
func (e *env) stored() string {
	e.t.Helper()
	return e.snapNotes(vm100, tFirst)
}

func (e *env) wantStored(what, want string) {
	e.t.Helper()
	if got := e.stored(); got != want {
		e.t.Errorf("%s: stored %q, want %q", what, got, want)
	}
}

var firstPath = "vm/100/" + tFirst + "/notes"

// Row "open for writing": the session starts from the stored text, also
// when an idle session is still there (a writer's release pending) and the
// notes were changed meanwhile: `echo more >> notes` then appends to the
// new text and is not refused as stale.
func TestSessionOpenStartsFromStored(t *testing.T) {
	e := newEnv(t)
	a := e.proc(firstPath, 10)
	ha := a.open(fuse.OpenWriteOnly|fuse.OpenAppend, false) // idle writer
	if err := e.store.SetNotes(e.ctx, datastore.Snapshot{Group: vm100, Time: tFirst}, "from the GUI\n"); err != nil {
		t.Fatal(err)
	}
	b := e.proc(firstPath, 20)
	hb := b.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	if err := b.write(hb, 0, "more\n"); err != nil {
		t.Fatal(err)
	}
	if err := b.close(hb); err != nil {
		t.Fatalf(">> after a change made meanwhile: %v", err)
	}
	e.release(hb)
	e.release(ha)
	e.wantStored(">>", "from the GUI\nmore\n")
}

// Row "O_TRUNC of an open": not committed at a close. bash's
// `printf '\xff\xfe' > notes` opens with O_TRUNC, dup2s the descriptor onto
// stdout and closes the original (a FLUSH of the empty text) before printf
// writes; the refused text then leaves the old notes (issue 14, item 4).
// `: > notes` (nothing written at all) clears them when the last
// descriptor goes.
func TestSessionOpenTruncRefusedText(t *testing.T) {
	e := newEnv(t)
	bash := e.proc(firstPath, 10)
	h := bash.open(fuse.OpenWriteOnly|fuse.OpenCreate, true)
	if err := bash.close(h); err != nil { // close(3) after dup2(3, 1)
		t.Fatal(err)
	}
	e.wantStored("after the first close", firstNotes)
	if got := e.cat(firstPath); got != "" {
		t.Errorf("a reader sees %q, want the truncated text", got)
	}
	if err := bash.write(h, 0, "\xff\xfe"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "close of the refused text", bash.close(h), syscall.EILSEQ) // dup2(saved, 1)
	if err := e.release(h); err != nil {
		t.Errorf("release: %v", err)
	}
	e.wantStored("after the refused text", firstNotes)
	if got := e.cat(firstPath); got != firstNotes {
		t.Errorf("mount shows %q after the refused text", got)
	}

	// : > notes
	h = bash.open(fuse.OpenWriteOnly|fuse.OpenCreate, true)
	bash.close(h)
	bash.close(h)
	e.wantStored(": > notes before the release", firstNotes)
	if err := e.release(h); err != nil {
		t.Fatal(err)
	}
	e.wantStored(": > notes", "")
}

// Row "O_TRUNC of an open", with a descriptor kept open: `exec 3> notes`,
// then `echo x >&3` (each builtin's output closed by the shell), then
// `exec 3>&-`. Every close before the first write leaves the notes; the
// close after a write commits, as on a local disk.
func TestSessionExecRedirect(t *testing.T) {
	e := newEnv(t)
	bash := e.proc(firstPath, 10)
	h := bash.open(fuse.OpenWriteOnly|fuse.OpenCreate, true)
	bash.close(h) // exec 3> notes: the opened descriptor, moved to 3
	e.wantStored("exec 3> notes", firstNotes)
	bash.write(h, 0, "x\n")
	if err := bash.close(h); err != nil { // the copy on stdout
		t.Fatal(err)
	}
	e.wantStored("echo x >&3", "x\n")
	bash.write(h, 2, "y\n")
	bash.close(h)
	e.wantStored("echo y >&3", "x\ny\n")
	bash.close(h) // exec 3>&-
	if err := e.release(h); err != nil {
		t.Fatal(err)
	}
	e.wantStored("exec 3>&-", "x\ny\n")
}

// Row "fsync": a truncation is committed at fsync (nano: O_TRUNC, write,
// fsync, close; here without the write).
func TestSessionFsyncCommitsTruncation(t *testing.T) {
	e := newEnv(t)
	p := e.proc(firstPath, 10)
	h := p.open(fuse.OpenWriteOnly, true)
	p.close(h)
	if err := p.fsync(); err != nil {
		t.Fatal(err)
	}
	e.wantStored("fsync after O_TRUNC", "")
	e.release(h)
}

// Row "ftruncate": `truncate -s 4 notes` (open without O_TRUNC, ftruncate,
// close) is committed at the close of the thread that truncated, not at the
// close of another process's copy of the descriptor.
func TestSessionFtruncate(t *testing.T) {
	e := newEnv(t)
	p := e.proc(firstPath, 10)
	child := e.proc(firstPath, 11)
	h := p.open(fuse.OpenWriteOnly|fuse.OpenCreate, false)
	if err := p.setattr(5, true); err != nil {
		t.Fatal(err)
	}
	child.close(h)
	e.wantStored("a child's close", firstNotes)
	if err := p.close(h); err != nil {
		t.Fatal(err)
	}
	e.wantStored("truncate -s 5", "first")
	e.release(h)
}

// Row "write past the limit" and "close", failure: `cat big > notes`. The
// close fails with EFBIG and the old notes stay; the refused text is gone,
// so another writer's append (open all along) succeeds (item 6 for EFBIG).
func TestSessionTooBigDropped(t *testing.T) {
	e := newEnv(t)
	cat := e.proc(firstPath, 10)
	other := e.proc(firstPath, 20)
	ho := other.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	h := cat.open(fuse.OpenWriteOnly, true)
	cat.close(h)
	if err := cat.write(h, 0, "a long text"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "write past the limit", cat.write(h, int64(e.fs.maxNotes)-2, "xyz"), syscall.EFBIG)
	wantErrno(t, "close", cat.close(h), syscall.EFBIG)
	e.release(h)
	e.wantStored("after the refused text", firstNotes)
	other.write(ho, 0, "appended\n")
	if err := other.close(ho); err != nil {
		t.Errorf("the other writer's append: %v", err)
	}
	e.release(ho)
	e.wantStored("append", firstNotes+"appended\n")
}

// Row "failure" at a close (issue 14, item 6): after a close failed
// (EILSEQ), the session holds the stored text again; another writer that
// has the notes open appends to that, and succeeds.
func TestSessionRefusedTextDoesNotLinger(t *testing.T) {
	e := newEnv(t)
	a := e.proc(firstPath, 10)
	b := e.proc(firstPath, 20)
	hb := b.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	ha := a.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	a.write(ha, 0, "bad \xff\n")
	wantErrno(t, "close of invalid UTF-8", a.close(ha), syscall.EILSEQ)
	e.release(ha)
	if err := b.write(hb, 0, "good\n"); err != nil {
		t.Fatal(err)
	}
	if err := b.close(hb); err != nil {
		t.Errorf("a valid append after someone's refused text: %v", err)
	}
	e.release(hb)
	e.wantStored("append", firstNotes+"good\n")
}

// Row "failure" at fsync: the text stays, so the close that follows tries
// once more (here after the lock holder let go).
func TestSessionFsyncFailureKeepsText(t *testing.T) {
	e := newEnv(t)
	p := e.proc(firstPath, 10)
	h := p.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	p.write(h, 0, "more\n")
	sn := datastore.Snapshot{Group: vm100, Time: tFirst}
	if err := e.store.SetNotes(e.ctx, sn, "changed\n"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "fsync over a change", p.fsync(), syscall.ESTALE)
	if err := e.store.SetNotes(e.ctx, sn, firstNotes); err != nil { // changed back
		t.Fatal(err)
	}
	if err := p.close(h); err != nil {
		t.Fatalf("the close after a failed fsync: %v", err)
	}
	e.release(h)
	e.wantStored("close", firstNotes+"more\n")
}

// Row "last release": what nobody's close committed is committed when the
// last writer goes: a text written by a process whose close never came (a
// descriptor passed on and released by the kernel).
func TestSessionLastReleaseCommits(t *testing.T) {
	e := newEnv(t)
	a := e.proc(firstPath, 10)
	b := e.proc(firstPath, 20)
	ha := a.open(fuse.OpenWriteOnly, true)
	hb := b.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	a.write(ha, 0, "replaced\n")
	b.close(hb) // b did not write: commits nothing
	e.wantStored("close by a non-writer", firstNotes)
	e.release(hb)
	e.wantStored("release of one of two", firstNotes)
	if err := e.release(ha); err != nil {
		t.Fatal(err)
	}
	e.wantStored("last release", "replaced\n")
}

// Row "rename onto notes" (issue 14, item 5): a program writes a temp file,
// renames it onto notes and keeps writing through the same descriptor; its
// later writes and fsync go to notes, as on a local disk.
func TestSessionWriteAfterRename(t *testing.T) {
	e := newEnv(t)
	dir := e.node("vm/100/" + tFirst)
	tmp, h := e.create(dir, "notes.tmp")
	p := proc{e: e, n: tmp, pid: 10, own: 10 << 8}
	if err := p.write(h, 0, "first part "); err != nil {
		t.Fatal(err)
	}
	if err := e.rename(dir, "notes.tmp", "notes"); err != nil {
		t.Fatal(err)
	}
	e.wantStored("after the rename", "first part ")
	if err := p.write(h, 11, "second part"); err != nil {
		t.Fatal(err)
	}
	if got := e.read(h); got != "first part second part" {
		t.Errorf("read through the descriptor: %q", got)
	}
	if err := p.fsync(); err != nil {
		t.Fatal(err)
	}
	e.wantStored("fsync", "first part second part")
	if err := p.close(h); err != nil {
		t.Fatal(err)
	}
	if err := e.release(h); err != nil {
		t.Fatal(err)
	}
	if got := e.cat(firstPath); got != "first part second part" {
		t.Errorf("notes read back %q", got)
	}
	// The session ended with the last descriptor: a new writer starts
	// from the stored text.
	q := e.proc(firstPath, 20)
	hq := q.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	q.write(hq, 0, "!")
	if err := q.close(hq); err != nil {
		t.Fatal(err)
	}
	e.release(hq)
	e.wantStored("append", "first part second part!")
}

// Row "rename onto notes" with an idle session: a writer that has notes
// open and has not written continues from the renamed text.
func TestSessionIdleFollowsRename(t *testing.T) {
	e := newEnv(t)
	dir := e.node("vm/100/" + tFirst)
	w := e.proc(firstPath, 10)
	hw := w.open(fuse.OpenWriteOnly|fuse.OpenAppend, false)
	_, h := e.create(dir, "sedX")
	e.write(h, 0, "by sed\n", 0)
	if err := e.rename(dir, "sedX", "notes"); err != nil {
		t.Fatal(err)
	}
	e.release(h)
	w.write(hw, 0, "appended\n")
	if err := w.close(hw); err != nil {
		t.Fatalf("append after the rename: %v", err)
	}
	e.release(hw)
	e.wantStored("append", "by sed\nappended\n")
}

// TestSessionTable checks the session type alone (no FUSE, no store)
// against the state columns of the README's table: from each state, each
// event's next state and whether it asks for a commit.
func TestSessionTable(t *testing.T) {
	const limit, writer, other = 16, owner(7), owner(8)
	const pid = 70
	states := []textState{clean, truncated, changed, tooBig}
	// in puts a fresh session with one writer (thread pid, process
	// writer) into state st.
	in := func(st textState) *session {
		s := newSession("stored", limit)
		s.open(pid, false)
		switch st {
		case truncated:
			s.openTrunc()
		case changed:
			s.write(0, []byte("x"), true, writer)
		case tooBig:
			s.write(0, []byte("x"), true, writer)
			s.write(limit, []byte("y"), false, writer)
		}
		if s.state != st {
			t.Fatalf("setup of %v: state %v", st, s.state)
		}
		return s
	}
	type result struct {
		next textState
		due  bool
	}
	rows := []struct {
		event string
		do    func(s *session) bool // applies the event, reports whether it commits now
		want  [4]result             // per state, in the order of states
	}{
		{"O_TRUNC of an open", func(s *session) bool { s.openTrunc(); return false },
			[4]result{{truncated, false}, {truncated, false}, {truncated, false}, {truncated, false}}},
		{"ftruncate", func(s *session) bool { s.ftruncate(3, pid); return false },
			[4]result{{changed, false}, {changed, false}, {changed, false}, {changed, false}}},
		{"write", func(s *session) bool { s.write(0, []byte("ab"), false, writer); return false },
			[4]result{{changed, false}, {changed, false}, {changed, false}, {tooBig, false}}},
		{"write past the limit", func(s *session) bool { s.write(limit-1, []byte("ab"), false, writer); return false },
			[4]result{{clean, false}, {tooBig, false}, {tooBig, false}, {tooBig, false}}},
		{"close by the process that changed it", func(s *session) bool { return s.dueAtClose(writer, pid) },
			[4]result{{clean, false}, {truncated, false}, {changed, true}, {tooBig, true}}},
		{"close by another process", func(s *session) bool { return s.dueAtClose(other, pid+1) },
			[4]result{{clean, false}, {truncated, false}, {changed, false}, {tooBig, false}}},
		{"fsync", func(s *session) bool { return s.dirty() },
			[4]result{{clean, false}, {truncated, true}, {changed, true}, {tooBig, true}}},
		{"release of the last writer", func(s *session) bool { return s.leave() && s.dirty() },
			[4]result{{clean, false}, {truncated, true}, {changed, true}, {tooBig, true}}},
		{"a file renamed onto notes", func(s *session) bool { s.replaced("renamed"); return false },
			[4]result{{clean, false}, {truncated, false}, {changed, false}, {tooBig, false}}},
		{"failure of a close's commit", func(s *session) bool { s.drop(); return false },
			[4]result{{clean, false}, {clean, false}, {clean, false}, {clean, false}}},
	}
	for _, r := range rows {
		for i, st := range states {
			s := in(st)
			due := r.do(s)
			if got := (result{s.state, due}); got != r.want[i] {
				t.Errorf("%s in state %d: state %d, commit %v; want state %d, commit %v",
					r.event, st, got.next, got.due, r.want[i].next, r.want[i].due)
			}
		}
	}
	// What a commit would write, and why it cannot.
	if _, _, err := in(tooBig).pending(); err != errPastLimit {
		t.Errorf("pending of a text past the limit: %v", err)
	}
	s := in(changed)
	s.write(1, []byte("\xff"), false, writer)
	if _, _, err := s.pending(); err != errNotUTF8 {
		t.Errorf("pending of invalid UTF-8: %v", err)
	}
	text, base, err := in(changed).pending()
	if err != nil || text != "storedx" || base == nil || *base != "stored" {
		t.Errorf("pending of an append: %q, base %v, %v", text, base, err)
	}
	s = in(truncated)
	s.write(0, []byte("new"), false, writer)
	if text, base, err := s.pending(); err != nil || text != "new" || base != nil {
		t.Errorf("pending of a new text: %q, base %v, %v (want no base: it replaces whatever is stored)", text, base, err)
	}
	s = in(clean)
	s.replaced("renamed")
	if string(s.buf) != "renamed" || s.stored != "renamed" {
		t.Errorf("an idle session after a rename holds %q (stored %q)", s.buf, s.stored)
	}
	s = in(changed)
	s.drop()
	if string(s.buf) != "stored" {
		t.Errorf("after a drop the session holds %q, want the stored text", s.buf)
	}
}
