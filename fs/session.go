package fs

import (
	"errors"
	"slices"
	"unicode/utf8"
)

// This file holds the write session of a notes file: the one text that all
// descriptors open for writing share, and the rules that say when it is
// committed. It knows nothing of FUSE or of the store: notesFile (notes.go)
// turns requests into the events below and performs the commits the
// session asks for. The rules are the table in fs/README.md ("Writing notes
// — the write session"); each row has a test in session_test.go.

// Errors of the write session (errors.go maps them to errnos).
var (
	errPastLimit = errors.New("notes past the size limit")
	errNotUTF8   = errors.New("notes are not valid UTF-8")
	errOffset    = errors.New("negative write offset")
)

// textState is where the session's text stands against the stored text.
type textState uint8

const (
	// clean: the text is the stored text; nothing to commit.
	clean textState = iota
	// truncated: emptied by the O_TRUNC of an open, nothing else since.
	// Committed at fsync and when the last writer goes, never at a close:
	// the open file may still be written through another descriptor (a
	// shell's `> notes` closes its first descriptor before the command
	// writes, and the write may yet be refused).
	truncated
	// changed: written, or resized through a descriptor (ftruncate), since
	// the last commit. Committed at fsync, at a close by a process that
	// changed it, and when the last writer goes.
	changed
	// tooBig: a write went past the size limit, so the text is a cut-off
	// prefix. Never committed; a close drops it, a truncation starts over.
	tooBig
)

// owner is the process behind a write or a close: the kernel's lock owner
// (its files_struct). noOwner stands for a write that came without one.
type owner = uint64

const noOwner owner = 0

// session is the write session of one notes file.
type session struct {
	buf     []byte
	stored  string // the stored text as last loaded or committed
	whole   bool   // buf no longer depends on stored (truncated to 0 since)
	state   textState
	wrote   []owner // processes that wrote since the last commit
	cutBy   uint32  // thread that resized it through a descriptor since (0: none)
	writers int     // open file descriptions for writing
	limit   int     // the size limit
	// otrunc is the thread of the latest writing open while its O_TRUNC
	// may still come: the kernel sends it as a size change without a
	// handle, right after the OPEN, from the same thread.
	otrunc struct {
		pid   uint32
		armed bool
	}
}

func newSession(stored string, limit int) *session {
	s := &session{limit: limit}
	s.restart(stored)
	return s
}

// restart makes stored the session's text, with nothing to commit.
func (s *session) restart(stored string) {
	s.buf, s.stored = []byte(stored), stored
	s.settled()
}

// settled: the text is the stored one; nothing is pending.
func (s *session) settled() {
	s.whole, s.state, s.wrote, s.cutBy = false, clean, nil, 0
}

// dirty reports whether the session holds a text other than the stored one.
func (s *session) dirty() bool { return s.state != clean }

// open: a file description opened for writing by thread pid joins.
// truncate is an O_TRUNC that came with the OPEN itself.
func (s *session) open(pid uint32, truncate bool) {
	s.join()
	if truncate {
		s.openTrunc()
	}
	s.otrunc.pid, s.otrunc.armed = pid, true
}

// join: a file description open for writing joins without an OPEN (one
// open on a file that was renamed onto notes since).
func (s *session) join() { s.writers++ }

// openTrunc is the O_TRUNC of an open: a new text starts, empty.
func (s *session) openTrunc() {
	s.otrunc.armed = false
	s.buf = s.buf[:0]
	s.state, s.whole, s.wrote, s.cutBy = truncated, true, nil, 0
}

// isOpenTrunc reports whether a size change without a handle, from thread
// pid, is the O_TRUNC of the latest writing open (rather than someone's
// truncate -s, committed at once).
func (s *session) isOpenTrunc(pid uint32, size int) bool {
	return s.writers > 0 && size == 0 && s.otrunc.armed && s.otrunc.pid == pid
}

// write puts p at off, or at the end of the text (atEnd: O_APPEND); a gap
// is filled with NUL bytes.
func (s *session) write(off int64, p []byte, atEnd bool, who owner) error {
	s.otrunc.armed = false
	if atEnd {
		off = int64(len(s.buf))
	}
	if off < 0 {
		return errOffset
	}
	end := off + int64(len(p))
	if end > int64(s.limit) {
		if s.state != clean { // part of the text arrived: it is cut off
			s.state = tooBig
			s.addWriter(who)
		}
		return errPastLimit
	}
	if end > int64(len(s.buf)) {
		s.buf = resize(s.buf, int(end))
	}
	copy(s.buf[off:], p)
	if s.state != tooBig {
		s.state = changed
	}
	s.addWriter(who)
	return nil
}

func (s *session) addWriter(who owner) {
	if !slices.Contains(s.wrote, who) {
		s.wrote = append(s.wrote, who)
	}
}

// ftruncate truncates or extends the text through a descriptor, from
// thread pid: committed with the session.
func (s *session) ftruncate(size int, pid uint32) error {
	if size > s.limit {
		return errPastLimit
	}
	s.otrunc.armed = false
	if size == len(s.buf) && s.state == clean {
		return nil
	}
	s.buf = resize(s.buf, size)
	if size == 0 { // nothing written so far counts
		s.whole, s.wrote = true, nil
	}
	s.state, s.cutBy = changed, pid
	return nil
}

// cutTo is someone else's truncate -s while the session is open: the text
// to commit at once, and its base. The session changes only once that
// commit succeeded (restart).
func (s *session) cutTo(size int) (text string, base *string, err error) {
	s.otrunc.armed = false
	if size > s.limit {
		return "", nil, errPastLimit
	}
	next := resize(slices.Clone(s.buf), size)
	if !utf8.Valid(next) { // cut in the middle of a character
		return "", nil, errNotUTF8
	}
	if size > 0 && !s.whole {
		base = &s.stored
	}
	return string(next), base, nil
}

// dueAtClose reports whether a close (FLUSH) by process who, thread pid,
// commits: only a changed text, and only the close of a process that
// changed it. Every copy of a descriptor flushes when closed, also the
// close-on-exec copy a child of the writer inherited; committing then would
// store whatever part of the text has arrived so far.
func (s *session) dueAtClose(who owner, pid uint32) bool {
	if s.state != changed && s.state != tooBig {
		return false
	}
	return slices.Contains(s.wrote, who) || slices.Contains(s.wrote, noOwner) ||
		(s.cutBy != 0 && s.cutBy == pid)
}

// leave: a writing file description was released; it reports whether it
// was the last, which commits what is still pending.
func (s *session) leave() (last bool) {
	s.writers--
	return s.writers <= 0
}

// pending is the text to commit and the base it must still find stored
// (nil: it replaces whatever is stored), or why it cannot be committed.
func (s *session) pending() (text string, base *string, err error) {
	switch {
	case s.state == tooBig:
		return "", nil, errPastLimit
	case !utf8.Valid(s.buf):
		return "", nil, errNotUTF8
	}
	if !s.whole {
		base = &s.stored
	}
	return string(s.buf), base, nil
}

// committed: text (the pending text) is stored now.
func (s *session) committed(text string) {
	s.stored = text
	s.settled()
}

// drop discards a refused text (a failed close): back to the stored text,
// so that nothing of it is written later or read by the next writer.
func (s *session) drop() { s.restart(s.stored) }

// replaced: the notes were replaced as a whole (a file renamed onto notes).
// An idle session continues from the new text; a pending text keeps its
// base, so its commit fails as stale unless it replaces the notes as a
// whole too.
func (s *session) replaced(text string) {
	if s.state == clean {
		s.restart(text)
	}
}
