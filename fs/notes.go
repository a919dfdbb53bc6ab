package fs

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

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
//
// Writes are buffered in memory in one write session per node, shared by
// every descriptor open for writing, so that all descriptors see the same
// text as with a local file. (bazil hands Setattr only the kernel's handle
// ID, never our handle, so a truncation through one descriptor — open with
// O_TRUNC, ftruncate — could not be applied to a per-descriptor buffer
// reliably.) The session starts from the committed text; the first write
// opener loads it, later openers join. It is committed — one locked
// ReplaceNotes or ReplaceGroupNotes — on fsync, on every close (flush) of a
// writing descriptor, and on the last release if still dirty; setting the
// size while nobody has the notes open for writing (truncate -s) commits
// at once.
//
// Lost updates are refused, not made: a commit passes the text the session
// was built on as base, so if someone else (the PBS GUI, another mount)
// changed the notes meanwhile, nothing is written and the close or fsync
// fails with ESTALE. Only a session whose content no longer depends on the
// old text — truncated to zero before anything else was written, as
// `echo x > notes` and editors do — replaces unconditionally.
type notesFile struct {
	nodeBase
	src notesSource

	mu   sync.Mutex
	sess *notesSession // nil while nobody has it open for writing

	// For reads through the page cache (see Open): the digest
	// (stampDigest) of the stored file the attributes last given to the
	// kernel came from (0: none, or they showed a pending text), and of
	// the text the kernel may hold pages of (0: none).
	attrSeen, paged atomic.Uint64
}

// notesSession is the write buffer of a notesFile.
type notesSession struct {
	buf     []byte
	base    string // the committed text buf was built on
	derived bool   // buf depends on base: false once truncated to 0
	dirty   bool   // buf differs from what was last committed
	writers int    // open writing handles
	// tooBig: a write went past the size limit (EFBIG). What the buffer
	// holds is then a cut-off prefix of the intended text, which is not
	// committed (every commit fails with EFBIG) until a resize — a
	// truncation, an O_TRUNC open — reshapes it.
	tooBig bool
	// wroteBy holds the lock owners (one per process: the kernel's
	// files_struct) whose writes went into the buffer since the last
	// commit; wroteByAny is set by a write that came without one. See
	// notesHandle.Flush.
	wroteBy    map[fuse.LockOwner]bool
	wroteByAny bool
	// openPid is the thread of the latest writing open, and truncPending
	// says no size change came since: the SETATTR(size 0) without a
	// handle that the kernel sends for open(O_TRUNC) comes right after the
	// OPEN, from the same thread. See Setattr.
	openPid      uint32
	truncPending bool
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
	return &notesFile{
		nodeBase: newFileBase(f, &d.dirBase, NotesName),
		src:      groupNotes{d},
	}
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
	seen := stampDigest(st)
	n.mu.Lock()
	if s := n.sess; s != nil && s.dirty {
		size, seen = len(s.buf), 0
	}
	n.mu.Unlock()
	n.attrSeen.Store(seen)
	n.fs.fileAttr(a, n.ino, size, st, true)
	return nil
}

// Open for writing answers with OpenDirectIO: writes bypass the page cache
// and an O_APPEND write lands where this package (not the kernel's possibly
// stale i_size) says the end is.
//
// Open for reading uses the page cache when that is safe, and DirectIO
// otherwise:
//   - the stored text is the one the kernel's attributes were computed from
//     (so its cached size is right, and reads are cut where the text ends)
//     and the kernel may have pages of it: OpenKeepCache — `cat` then costs
//     an OPEN and a RELEASE, the text comes from the page cache;
//   - the attributes are right but the pages may be of another text: no
//     flag (the kernel drops its pages and reads afresh);
//   - the text changed since the attributes were given (PBS changed it and
//     the revalidator has not told the kernel yet), or a writer's pending
//     text differs: OpenDirectIO, which is never cut to a stale size nor
//     served from stale pages, and the attributes are invalidated.
//
// Commits through the mount drop the kernel's pages and attributes
// (afterCommit).
func (n *notesFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if !writable(req.Flags) {
		resp.Flags |= openNoFlush // a reader's close has nothing to commit
		n.mu.Lock()
		if s := n.sess; s != nil && s.dirty {
			data := slices.Clone(s.buf)
			n.mu.Unlock()
			resp.Flags |= fuse.OpenDirectIO
			return &notesHandle{n: n, data: data}, nil
		}
		n.mu.Unlock()
		text, st, err := n.src.load()
		if err != nil {
			return nil, n.fs.errno("open "+n.display(), err)
		}
		d := stampDigest(st)
		switch {
		case d != n.attrSeen.Load():
			resp.Flags |= fuse.OpenDirectIO
			n.paged.Store(0)
			n.dropPrimed()
			n.fs.invalidateAttr(n)
		case n.paged.Swap(d) == d:
			resp.Flags |= fuse.OpenKeepCache
		}
		return &notesHandle{n: n, data: []byte(text)}, nil
	}
	resp.Flags |= fuse.OpenDirectIO
	if n.fs.ro {
		return nil, n.fs.readOnlyErr()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess == nil || !n.sess.dirty {
		// Start (or refresh an unchanged) session from the committed text.
		text, _, err := n.src.load()
		if err != nil {
			return nil, n.fs.errno("open "+n.display(), err)
		}
		if n.sess == nil {
			n.sess = &notesSession{}
		}
		s := n.sess
		s.buf, s.base, s.derived = []byte(text), text, true
		// Whatever a dropped text left behind does not apply to this one.
		s.tooBig, s.wroteBy, s.wroteByAny = false, nil, false
	}
	n.sess.writers++
	n.sess.openPid, n.sess.truncPending = req.Pid, true
	if req.Flags&fuse.OpenTruncate != 0 {
		// The kernel strips O_TRUNC (bazil does not negotiate atomic
		// O_TRUNC) and sends a Setattr, without a handle, instead (see
		// Setattr); honour it should it come.
		n.resizeLocked(0)
	}
	return &notesHandle{n: n, write: true, append: req.Flags&fuse.OpenAppend != 0}, nil
}

// resizeLocked truncates or extends (with NUL bytes) the session buffer.
func (n *notesFile) resizeLocked(size int) {
	s := n.sess
	s.tooBig = false
	if size == 0 {
		s.derived = false
	}
	if size == len(s.buf) {
		return
	}
	if size < len(s.buf) {
		s.buf = s.buf[:size]
	} else {
		s.buf = append(s.buf, make([]byte, size-len(s.buf))...)
	}
	s.dirty = true
}

// Setattr:
//   - size: truncates or extends with NUL bytes the open write session if
//     there is one, else the committed text. Through a file handle
//     (ftruncate) and for open(O_TRUNC) it is committed with the session,
//     on its next fsync or close; otherwise (truncate -s) at once. EFBIG
//     past the size limit. The kernel sends the truncation of open(O_TRUNC)
//     as a Setattr(size 0) without a handle, right after the OPEN and from
//     the same thread, which is how it is recognized: committing it at once
//     would put empty notes on disk until the new text is closed — visible
//     to PBS meanwhile, and left there for good if pbsfs dies or the new
//     text cannot be written (not UTF-8, disk full).
//   - uid, gid: accepted when unchanged (cp -p, vim's fchown), EPERM
//     otherwise: the notes belong to the file that stores them.
//   - mode, atime, mtime: accepted and ignored, deliberately. vim fchmods
//     the file it wrote and cp -p and touch set times; refusing would turn
//     successful saves into errors, and there is nothing to store them in.
func (n *notesFile) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	if n.fs.ro {
		return n.fs.readOnlyErr()
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
	if req.Size > uint64(n.fs.maxNotes) {
		return errTooBig
	}
	size := int(req.Size)
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.sess; s != nil && s.writers > 0 {
		oTrunc := size == 0 && !req.Valid.Handle() && s.truncPending && req.Pid == s.openPid
		s.truncPending = false
		n.resizeLocked(size)
		if req.Valid.Handle() || oTrunc {
			return nil // committed with the session
		}
		// Someone else's truncate -s, while a writer has the notes open
		// (or its release is still on the way): at once, as without one.
		return n.commitLocked(ctx, "truncate")
	}
	text, _, err := n.src.load()
	if err != nil {
		return n.fs.errno("truncate "+n.display(), err)
	}
	if size == len(text) {
		return nil
	}
	var next string
	var base *string
	if size < len(text) {
		next = text[:size]
	} else {
		next = text + string(make([]byte, size-len(text)))
	}
	if size > 0 {
		base = &text
	}
	if !utf8.ValidString(next) { // cut in the middle of a character
		return errIllegal
	}
	if err := n.src.replace(ctx, base, next); err != nil {
		return n.fs.errno("truncate "+n.display(), err)
	}
	n.afterCommit()
	return nil
}

// Fsync commits the write session if it has uncommitted changes; vim and
// nano fsync before close and report a failure ("E667: Fsync failed").
func (n *notesFile) Fsync(ctx context.Context, req *fuse.FsyncRequest) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.commitLocked(ctx, "fsync")
}

// commitLocked writes the session's text if it is dirty. On failure the
// session stays dirty (a later fsync or close tries again) and the errno is
// returned to the caller: fsync, close or truncate fails visibly.
func (n *notesFile) commitLocked(ctx context.Context, op string) error {
	s := n.sess
	if s == nil || !s.dirty {
		return nil
	}
	if s.tooBig {
		n.fs.log.Info(op+" "+n.display()+": a write went past the size limit; the cut-off text is not written", "limit", n.fs.maxNotes)
		return errTooBig
	}
	if !utf8.Valid(s.buf) {
		n.fs.log.Info(op+" "+n.display()+": notes are not valid UTF-8; not written", "bytes", len(s.buf))
		return errIllegal
	}
	text := string(s.buf)
	var base *string
	if s.derived {
		b := s.base
		base = &b
	}
	if err := n.src.replace(ctx, base, text); err != nil {
		return n.fs.errno(op+" "+n.display(), err)
	}
	s.base, s.derived, s.dirty = text, true, false
	s.wroteBy, s.wroteByAny = nil, false
	n.fs.log.Debug("notes committed", "file", n.display(), "bytes", len(text))
	n.afterCommit()
	return nil
}

// afterCommit drops kernel caches that show the old text.
func (n *notesFile) afterCommit() {
	n.attrSeen.Store(0)
	n.paged.Store(0)
	n.dropPrimed()
	n.fs.invalidateData(n)
	n.src.committed()
}

// releaseWriter ends one writer's part in the session; the last one commits
// what is still dirty and ends the session.
func (n *notesFile) releaseWriter(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sess
	if s == nil {
		return nil
	}
	s.writers--
	if s.writers > 0 {
		return nil
	}
	err := n.commitLocked(ctx, "close")
	if err != nil {
		n.fs.log.Error("notes edit lost: the last writer closed it and it could not be written",
			"file", n.display(), "bytes", len(s.buf), "err", err)
	}
	n.sess = nil
	return err
}

// notesHandle is an open notes file. A read-only handle serves the text as
// it was at open (or the pending text of a writer); a writing handle reads
// and writes the node's shared write session.
type notesHandle struct {
	n      *notesFile
	write  bool
	append bool   // opened with O_APPEND
	data   []byte // read-only handles: the text at open
}

var (
	_ fusefs.Handle         = (*notesHandle)(nil)
	_ fusefs.HandleReader   = (*notesHandle)(nil)
	_ fusefs.HandleWriter   = (*notesHandle)(nil)
	_ fusefs.HandleFlusher  = (*notesHandle)(nil)
	_ fusefs.HandleReleaser = (*notesHandle)(nil)
)

func (h *notesHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	if !h.write {
		resp.Data = readAt(h.data, req.Offset, req.Size)
		return nil
	}
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	// A copy: bazil sends resp.Data after we return, when a concurrent
	// Write may already be changing the buffer.
	resp.Data = slices.Clone(readAt(h.n.sess.buf, req.Offset, req.Size))
	return nil
}

// Write puts data into the write session at the request's offset, or at the
// end of the text for O_APPEND descriptors (the kernel's offset would be
// its cached size, which can be stale). A gap is filled with NUL bytes.
func (h *notesHandle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	if !h.write {
		return fuse.Errno(syscall.EBADF) // the kernel never sends this
	}
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sess
	off := req.Offset
	if h.append || req.FileFlags&fuse.OpenAppend != 0 {
		off = int64(len(s.buf))
	}
	if off < 0 {
		return errInval
	}
	end := off + int64(len(req.Data))
	if end > int64(n.fs.maxNotes) {
		s.tooBig = true
		return errTooBig
	}
	if end > int64(len(s.buf)) {
		s.buf = append(s.buf, make([]byte, end-int64(len(s.buf)))...)
	}
	copy(s.buf[off:], req.Data)
	s.dirty = true
	if req.Flags&fuse.WriteLockOwner != 0 {
		if s.wroteBy == nil {
			s.wroteBy = map[fuse.LockOwner]bool{}
		}
		s.wroteBy[req.LockOwner] = true
	} else {
		s.wroteByAny = true
	}
	resp.Size = len(req.Data)
	return nil
}

// Flush is called on each close() of a descriptor (more than once per open
// when descriptors were duplicated, and possibly never after some writes);
// a writing descriptor commits here so that close() reports a failed save.
func (h *notesHandle) Flush(ctx context.Context, req *fuse.FlushRequest) error {
	if !h.write {
		return nil
	}
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	if s := h.n.sess; s != nil && s.dirty && !s.wroteByAny && len(s.wroteBy) > 0 && !s.wroteBy[req.LockOwner] {
		// Every close of every copy of the descriptor flushes, also the
		// close-on-exec of the copy a child process forked meanwhile by
		// the writer (any multi-threaded writer, a Go program, forks
		// without a lock against its own open files) inherited and never
		// wrote to. Committing then would store whatever part of the text
		// has arrived so far — and leave it there if the writer's own
		// close then fails (EFBIG, EILSEQ) or pbsfs dies. So only a
		// process that wrote commits at close; the others' closes change
		// nothing (a session nobody wrote to, a bare truncation, commits
		// at any close).
		h.n.fs.log.Debug("close by a process that did not write; not committed", "file", h.n.display(), "pid", req.Pid)
		return nil
	}
	err := h.n.commitLocked(ctx, "close")
	if err != nil && h.n.sess != nil {
		// close(2) tells the writer the text was not saved; it may retry
		// (a shell's `>>` would then append twice). So the rejected text is
		// dropped here, not written behind the writer's back at release: a
		// failed close leaves the notes unchanged, as documented. (A failed
		// fsync keeps the session, so the close that follows retries.)
		h.n.sess.dirty = false
		h.n.sess.wroteBy, h.n.sess.wroteByAny = nil, false
		h.n.fs.log.Warn("notes not saved: close failed; the text was dropped", "file", h.n.display(), "err", err)
	}
	return err
}

// Release commits what is still dirty when the last writer goes (its error
// reaches no one, so it is also logged).
func (h *notesHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	if !h.write {
		return nil
	}
	return h.n.releaseWriter(ctx)
}

// readAt returns up to size bytes of data from off.
func readAt(data []byte, off int64, size int) []byte {
	if off < 0 || off >= int64(len(data)) {
		return nil
	}
	end := min(off+int64(size), int64(len(data)))
	return data[off:end]
}
