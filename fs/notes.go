package fs

import (
	"context"
	"slices"
	"sync"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// notesSource is where a notes file's text lives.
type notesSource interface {
	// load returns the committed text and the stamp of the file the
	// attributes come from (the manifest blob, the group notes file, or
	// for a group without notes file the group directory).
	load() (string, datastore.Stamp, error)
	// size returns the committed text's length and the stamp, cheaply
	// where possible (for attributes).
	size() (int, datastore.Stamp, error)
	// replace writes text in one locked update, provided the text found
	// under the lock still equals *base (any text when base is nil). ctx
	// is the FUSE request's: an interrupt ends a lock wait (EINTR).
	replace(ctx context.Context, base *string, text string) error
	// committed is called after a commit, to drop what else shows the
	// text (manifest.json).
	committed()
}

// snapNotes: unprotected.notes of a snapshot's manifest. Attributes come
// from index.json.blob. (A single pointer: stored in the interface without
// an allocation of its own.)
type snapNotes struct{ d *snapDir }

func (s snapNotes) size() (int, datastore.Stamp, error) {
	n, _, st, err := s.d.lengths()
	return n, st, err
}

func (s snapNotes) load() (string, datastore.Stamp, error) {
	return s.d.notesText()
}

func (s snapNotes) replace(ctx context.Context, base *string, text string) error {
	return s.d.fs.store.ReplaceNotes(ctx, s.d.sn, base, text)
}

func (s snapNotes) committed() {
	s.d.meta.forget()
	if m, ok := s.d.kids.peek(ManifestName); ok {
		m.base().dropPrimed()
		s.d.fs.invalidateData(m)
	}
}

// groupNotes: the group's notes file; a group without one shows empty notes
// with the group directory's owner and times.
type groupNotes struct{ d *groupDir }

func (s groupNotes) load() (string, datastore.Stamp, error) {
	store, g := s.d.fs.store, s.d.g
	text, st, err := store.GroupNotes(g)
	if err != nil {
		return "", st, err
	}
	if st.IsZero() {
		if st, err = store.StatGroup(g); err != nil {
			return "", st, err
		}
	}
	return text, st, nil
}

func (s groupNotes) size() (int, datastore.Stamp, error) {
	text, st, err := s.load()
	return len(text), st, err
}

func (s groupNotes) replace(ctx context.Context, base *string, text string) error {
	return s.d.fs.store.ReplaceGroupNotes(ctx, s.d.g, base, text)
}

func (s groupNotes) committed() {}

// notesFile is a snapshot's or a group's notes, readable and writable.
// Writes go into one write session per node (session.go), shared by every
// descriptor open for writing, so that all of them see the same text as with
// a local file — and because bazil hands Setattr (the O_TRUNC of an open,
// ftruncate) only the kernel's handle number, never our handle. The handlers
// below turn requests into session events and make the commits it asks for:
// each one locked ReplaceNotes or ReplaceGroupNotes that passes the text the
// session was built on as base, so an edit made meanwhile by someone else
// (the PBS GUI, another mount) is refused (ESTALE), not overwritten. What
// commits when is the table in fs/README.md ("Writing notes").
type notesFile struct {
	nodeBase
	src notesSource

	mu   sync.Mutex
	sess *session // nil while nobody has the notes open for writing
}

var (
	_ fusefs.Node          = (*notesFile)(nil)
	_ fusefs.NodeOpener    = (*notesFile)(nil)
	_ fusefs.NodeSetattrer = (*notesFile)(nil)
	_ fusefs.NodeFsyncer   = (*notesFile)(nil)
	_ fusefs.NodeForgetter = (*notesFile)(nil)
)

// NotesName is the name of the notes file in snapshot and group directories.
const NotesName = "notes"

func newSnapNotes(f *FS, d *snapDir) *notesFile {
	return &notesFile{nodeBase: newFileBase(f, &d.dirBase, NotesName), src: snapNotes{d}}
}

func newGroupNotes(f *FS, d *groupDir) *notesFile {
	return &notesFile{nodeBase: newFileBase(f, &d.dirBase, NotesName), src: groupNotes{d}}
}

// Attr: size is the committed text's, or the pending text's while a writer
// has changed it (so that the kernel's idea of the size matches what reads
// return); times and owner are those of the file the text is stored in.
func (n *notesFile) Attr(ctx context.Context, a *fuse.Attr) error {
	if n.takePrimed(a) {
		return nil
	}
	size, st, err := n.src.size()
	if err != nil {
		return n.fs.errno("stat "+n.display(), err)
	}
	n.mu.Lock()
	if s := n.sess; s != nil && s.dirty() {
		size = len(s.buf)
	}
	n.mu.Unlock()
	n.fs.fileAttr(a, n.ino, size, st, true)
	return nil
}

// Open answers OpenDirectIO, for reading and writing alike.
//
// A read-only open serves the text as it is at the open — the stored one,
// or a writer's pending text — whole: a DirectIO read goes to the handle
// until its EOF. Through the page cache the kernel would cut the read at
// the size it holds for the file, and that size moves under the reader
// whenever a writer truncates or writes through another descriptor or an
// attribute reply tells of a newer text (a save through the mount or from
// PBS): reads came back cut short or padded with NULs
// (TestNotesReadsRacingWrites). The price: a warm `cat` costs two READ
// round trips, and a MAP_SHARED mmap of notes fails with ENODEV
// (fs/README.md, "Page cache flags").
//
// Writes bypass the page cache too, and an O_APPEND write lands where this
// package (not the kernel's possibly stale i_size) says the end is.
func (n *notesFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	resp.Flags |= fuse.OpenDirectIO
	if !writable(req.Flags) {
		resp.Flags |= openNoFlush // a reader's close has nothing to commit
		return n.reader()
	}
	if err := n.fs.writeRefused("open " + n.display()); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.sessionLocked(); err != nil {
		return nil, err
	}
	// The kernel strips O_TRUNC from the OPEN (bazil does not negotiate
	// atomic O_TRUNC) and sends a Setattr instead; honour it should it come.
	n.sess.open(req.Pid, req.Flags&fuse.OpenTruncate != 0)
	return &notesHandle{n: n, append: req.Flags&fuse.OpenAppend != 0}, nil
}

// reader returns a read-only handle of the text now: a writer's pending
// text, else the stored one.
func (n *notesFile) reader() (fusefs.Handle, error) {
	n.mu.Lock()
	if s := n.sess; s != nil && s.dirty() {
		data := slices.Clone(s.buf)
		n.mu.Unlock()
		return &bytesHandle{data: data}, nil
	}
	n.mu.Unlock()
	text, _, err := n.src.load()
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	return &bytesHandle{data: []byte(text)}, nil
}

// sessionLocked makes sure there is a session for a writer to join: one
// that holds a pending text, else one (re)started from the stored text.
func (n *notesFile) sessionLocked() error {
	if n.sess != nil && n.sess.dirty() {
		return nil
	}
	text, _, err := n.src.load()
	if err != nil {
		return n.fs.errno("open "+n.display(), err)
	}
	if n.sess == nil {
		n.sess = newSession(text, n.fs.maxNotes)
	}
	n.sess.restart(text)
	return nil
}

// writer is a writing handle of a descriptor opened on another file that
// was renamed onto notes since (scratch.go): it joins the session.
func (n *notesFile) writer(appendMode bool) (*notesHandle, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.sessionLocked(); err != nil {
		return nil, err
	}
	n.sess.join()
	return &notesHandle{n: n, append: appendMode}, nil
}

// Setattr:
//   - size: the truncate event. Through a writer — ftruncate (with a
//     handle) or the O_TRUNC of an open (session.isOpenTrunc) — it goes
//     into the session and is committed with it. Anyone else's (truncate
//     -s) is committed at once, or fails at once (EILSEQ for a cut
//     character, EFBIG past the limit), whether or not someone writes.
//   - uid, gid: accepted when unchanged (cp -p, vim's fchown), EPERM
//     otherwise: the notes belong to the file that stores them.
//   - mode, atime, mtime: accepted and ignored, deliberately. vim fchmods
//     the file it wrote and cp -p and touch set times; refusing would turn
//     successful saves into errors, and there is nothing to store them in.
func (n *notesFile) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	ctx, stop := userInterrupt(ctx, req.Pid)
	defer stop()
	if err := n.fs.writeRefused("setattr " + n.display()); err != nil {
		return err
	}
	if req.Valid.Uid() || req.Valid.Gid() {
		_, st, err := n.src.load()
		if err != nil {
			return n.fs.errno("chown "+n.display(), err)
		}
		if (req.Valid.Uid() && req.Uid != st.UID) || (req.Valid.Gid() && req.Gid != st.GID) {
			return errPerm
		}
	}
	if !req.Valid.Size() {
		return nil
	}
	op := "truncate " + n.display()
	size := int(min(req.Size, uint64(n.fs.maxNotes)+1))
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sess
	switch {
	case s != nil && req.Valid.Handle():
		return n.fs.errno(op, s.ftruncate(size, req.Pid))
	case s != nil && s.isOpenTrunc(req.Pid, size):
		s.openTrunc()
		return nil
	}
	if s == nil {
		text, _, err := n.src.load()
		if err != nil {
			return n.fs.errno(op, err)
		}
		s = newSession(text, n.fs.maxNotes)
	}
	if size == len(s.buf) && !s.dirty() {
		return nil
	}
	text, base, err := s.cutTo(size)
	if err == nil {
		err = n.src.replace(ctx, base, text)
	}
	if err != nil {
		return n.fs.errno(op, err)
	}
	s.restart(text)
	n.afterCommit()
	return nil
}

// Fsync commits a pending text; vim and nano fsync before close and report
// a failure ("E667: Fsync failed"). A failed fsync keeps the text, so the
// close that follows tries once more.
func (n *notesFile) Fsync(ctx context.Context, req *fuse.FsyncRequest) error {
	ctx, stop := userInterrupt(ctx, req.Pid)
	defer stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess == nil || !n.sess.dirty() {
		return nil
	}
	return n.commitLocked(ctx, "fsync")
}

// commitLocked writes the session's pending text in one locked update.
func (n *notesFile) commitLocked(ctx context.Context, op string) error {
	text, base, err := n.sess.pending()
	if err == nil {
		err = n.src.replace(ctx, base, text)
	}
	if err != nil {
		return n.fs.errno(op+" "+n.display(), err)
	}
	n.sess.committed(text)
	n.fs.log.Debug("notes committed", "file", n.display(), "bytes", len(text))
	n.afterCommit()
	return nil
}

// afterCommit drops kernel caches that show the old text.
func (n *notesFile) afterCommit() {
	n.dropPrimed()
	n.fs.invalidateData(n)
	n.src.committed()
}

// forgetKernelSize is for a write session dropped without its text being
// committed: the kernel may hold the size the dropped text had (a
// truncation's reply is valid for the TTL), which stat would show.
func (n *notesFile) forgetKernelSize() {
	n.dropPrimed()
	n.fs.invalidateAttr(n)
}

// notesHandle is a notes file open for writing: it reads and writes the
// node's shared write session. (Read-only opens are bytesHandles.)
type notesHandle struct {
	n      *notesFile
	append bool // opened with O_APPEND
}

var (
	_ fusefs.Handle         = (*notesHandle)(nil)
	_ fusefs.HandleReader   = (*notesHandle)(nil)
	_ fusefs.HandleWriter   = (*notesHandle)(nil)
	_ fusefs.HandleFlusher  = (*notesHandle)(nil)
	_ fusefs.HandleReleaser = (*notesHandle)(nil)
)

func (h *notesHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	// A copy: bazil sends resp.Data after we return, when a concurrent
	// Write may already be changing the buffer.
	resp.Data = slices.Clone(readAt(h.n.sess.buf, req.Offset, req.Size))
	return nil
}

// Write is the write event: at the request's offset, or at the end of the
// text for O_APPEND descriptors (the kernel's offset would be its cached
// size, which can be stale).
func (h *notesHandle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	who := noOwner
	if req.Flags&fuse.WriteLockOwner != 0 {
		who = owner(req.LockOwner)
	}
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	atEnd := h.append || req.FileFlags&fuse.OpenAppend != 0
	if err := h.n.sess.write(req.Offset, req.Data, atEnd, who); err != nil {
		return h.n.fs.errno("write "+h.n.display(), err)
	}
	resp.Size = len(req.Data)
	return nil
}

// Flush is the close event, sent at each close() of a descriptor (more than
// once per open when descriptors were duplicated). It commits a text the
// closing process wrote, so that close() reports a failed save; a refused
// text is dropped then, not written later behind the writer's back (a shell
// retrying `>>` after EAGAIN must not append twice).
func (h *notesHandle) Flush(ctx context.Context, req *fuse.FlushRequest) error {
	ctx, stop := userInterrupt(ctx, req.Pid)
	defer stop()
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	if !h.n.sess.dueAtClose(owner(req.LockOwner), req.Pid) {
		return nil
	}
	err := h.n.commitLocked(ctx, "close")
	if err != nil {
		h.n.sess.drop()
		h.n.forgetKernelSize()
		h.n.fs.log.Debug("close failed (logged above); the text was dropped", "file", h.n.display(), "err", err)
	}
	return err
}

// Release is the release event: the last writer commits what is still
// pending and ends the session; its error reaches no one, so it is logged.
func (h *notesHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.sess.leave() {
		return nil
	}
	var err error
	if n.sess.dirty() {
		if err = n.commitLocked(ctx, "close"); err != nil {
			n.forgetKernelSize()
			n.fs.log.Error("notes edit lost: the last writer closed it and it could not be written",
				"file", n.display(), "bytes", len(n.sess.buf), "err", err)
		}
	}
	n.sess = nil
	return err
}

// readAt returns up to size bytes of data from off.
func readAt(data []byte, off int64, size int) []byte {
	if off < 0 || off >= int64(len(data)) {
		return nil
	}
	end := min(off+int64(size), int64(len(data)))
	return data[off:end]
}
