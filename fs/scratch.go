package fs

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// Scratch files are what editors and tools create next to the file they
// save: vim's swap file and "4913" probe, backups such as "notes~", sed -i's
// temporary file, Emacs's ".#notes" lock symlink and "#notes#" auto-save.
// They live in memory only, in snapshot and group directories, until they
// are removed or the file system is unmounted; nothing of them is ever
// written to the datastore. Renaming a scratch file onto "notes" commits its
// text as the new notes (see renameIn in editdir.go).

// Limits on scratch files, so that a runaway tool cannot eat the memory of
// the host: 256 names per directory (ENOSPC beyond), FS.maxNotes bytes per
// file (EFBIG beyond), and Options.MaxScratchBytes for the content of all
// scratch files of the mount together (ENOSPC beyond). A scratch file's
// bytes count from when they are written until it is gone from its
// directory and the kernel has forgotten it (an unlinked file still open
// keeps its content, as on a local disk), or its snapshot or group is
// removed.
const maxScratchPerDir = 256

// DefaultMaxScratchBytes is Options.MaxScratchBytes when zero: editors'
// swap and backup files of a few notes are kilobytes each.
const DefaultMaxScratchBytes = 64 << 20

// scratchDir holds the scratch files of one directory, by name.
type scratchDir struct {
	files map[string]*scratchFile
	// notesUnlinked: notes was unlinked and not created again (see
	// unlinkIn); the stored notes are unchanged.
	notesUnlinked bool
}

// scratchFile is an in-memory regular file or symlink.
type scratchFile struct {
	nodeBase

	mu     sync.Mutex
	data   []byte // file content
	target string // symlink target
	link   bool
	perm   os.FileMode
	uid    uint32
	gid    uint32
	mtime  time.Time
	ctime  time.Time
	// notes is set once the file was renamed onto notes: the kernel may
	// still reach this node under the name "notes" until its entry is
	// invalidated, so from then on it answers as the notes file does.
	notes *notesFile
	// charged is how many bytes of data count against FS.scratchBytes.
	charged int64

	// names (how many directory entries name the file) and kernelRef (the
	// kernel may hold the node) decide when its bytes go back; guarded
	// by FS.scratchMu.
	names     int
	kernelRef bool
}

var (
	_ fusefs.Node           = (*scratchFile)(nil)
	_ fusefs.NodeOpener     = (*scratchFile)(nil)
	_ fusefs.NodeSetattrer  = (*scratchFile)(nil)
	_ fusefs.NodeFsyncer    = (*scratchFile)(nil)
	_ fusefs.NodeReadlinker = (*scratchFile)(nil)
	_ fusefs.NodeForgetter  = (*scratchFile)(nil)
)

func (f *FS) newScratch(dirRel, name string, perm os.FileMode, uid, gid uint32) *scratchFile {
	now := time.Now()
	return &scratchFile{
		nodeBase: newBase(f, dirRel+"/"+name),
		perm:     perm & os.ModePerm,
		uid:      uid,
		gid:      gid,
		mtime:    now,
		ctime:    now,
	}
}

// scratchLookup returns the scratch file name in dir, or nil.
func (f *FS) scratchLookup(dir, name string) *scratchFile {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	if sd := f.scratch[dir]; sd != nil {
		if sf := sd.files[name]; sf != nil {
			sf.kernelRef = true
			return sf
		}
	}
	return nil
}

// scratchAdd adds sf as name in dir; with replace it replaces an existing
// file (a rename, or a copy made by pbsfs), else an existing name is EEXIST
// and sf is a new file handed to the kernel (create, mknod, symlink).
func (f *FS) scratchAdd(dir, name string, sf *scratchFile, replace bool) error {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	sd := f.scratch[dir]
	if sd == nil {
		sd = &scratchDir{files: map[string]*scratchFile{}}
		f.scratch[dir] = sd
	}
	old, ok := sd.files[name]
	if ok && !replace {
		return errExist
	} else if !ok && len(sd.files) >= maxScratchPerDir {
		return fuse.Errno(syscall.ENOSPC)
	}
	if old == sf {
		return nil
	}
	if err := sf.chargeAll(); err != nil { // content set before it was added
		return err
	}
	sd.files[name] = sf
	sf.names++
	if !replace {
		sf.kernelRef = true
	}
	if old != nil {
		f.unnameLocked(old)
	}
	return nil
}

// unnameLocked notes that one name of sf is gone; the caller holds
// scratchMu.
func (f *FS) unnameLocked(sf *scratchFile) {
	sf.names--
	if sf.names == 0 && !sf.kernelRef {
		sf.drop()
	}
}

// Forget: the kernel dropped the node; a file no name refers to any more
// gives its bytes back.
func (s *scratchFile) Forget() {
	s.nodeBase.Forget()
	s.fs.scratchMu.Lock()
	defer s.fs.scratchMu.Unlock()
	s.kernelRef = false
	if s.names == 0 {
		s.drop()
	}
}

// resizeLocked sets the length of data, taking what it grows by from the
// mount's scratch budget (ENOSPC when that is spent) and giving back what
// it shrinks by. The caller holds s.mu and has checked the per-file limit.
func (s *scratchFile) resizeLocked(size int) error {
	if grow := int64(size) - s.charged; grow > 0 {
		if !s.fs.scratchBytes.TryAcquire(grow) {
			s.fs.log.Info("scratch files hold all the memory they may; write refused", "file", s.display(),
				"limit", s.fs.maxScratch)
			return fuse.Errno(syscall.ENOSPC)
		}
	} else if grow < 0 {
		s.fs.scratchBytes.Release(-grow)
	}
	s.charged = int64(size)
	s.data = resize(s.data, size)
	return nil
}

// chargeAll charges content that was set without resizeLocked.
func (s *scratchFile) chargeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resizeLocked(len(s.data))
}

// drop gives the file's bytes back and forgets its content.
func (s *scratchFile) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.charged > 0 {
		s.fs.scratchBytes.Release(s.charged)
	}
	s.charged, s.data = 0, nil
}

// scratchRemove removes name from dir and returns it (nil if absent).
func (f *FS) scratchRemove(dir, name string) *scratchFile {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	sd := f.scratch[dir]
	if sd == nil {
		return nil
	}
	sf := sd.files[name]
	if sf == nil {
		return nil
	}
	delete(sd.files, name)
	f.unnameLocked(sf)
	if len(sd.files) == 0 && !sd.notesUnlinked {
		delete(f.scratch, dir)
	}
	return sf
}

// notesUnlinked reports whether notes in dir was unlinked and not created
// again.
func (f *FS) notesUnlinked(dir string) bool {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	sd := f.scratch[dir]
	return sd != nil && sd.notesUnlinked
}

// setNotesUnlinked records that notes in dir was unlinked (gone) or exists
// again, and reports whether that changed anything.
func (f *FS) setNotesUnlinked(dir string, gone bool) bool {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	sd := f.scratch[dir]
	if sd == nil {
		if !gone {
			return false
		}
		sd = &scratchDir{files: map[string]*scratchFile{}}
		f.scratch[dir] = sd
	}
	if sd.notesUnlinked == gone {
		return false
	}
	sd.notesUnlinked = gone
	if len(sd.files) == 0 && !gone {
		delete(f.scratch, dir)
	}
	return true
}

// scratchList lists dir's scratch files as directory entries.
func (f *FS) scratchList(dir string) []fuse.Dirent {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	sd := f.scratch[dir]
	if sd == nil {
		return nil
	}
	ents := make([]fuse.Dirent, 0, len(sd.files))
	for name, sf := range sd.files {
		typ := fuse.DT_File
		if sf.link {
			typ = fuse.DT_Link
		}
		ents = append(ents, fuse.Dirent{Inode: sf.ino, Type: typ, Name: name})
	}
	slices.SortFunc(ents, func(a, b fuse.Dirent) int { return strings.Compare(a.Name, b.Name) })
	return ents
}

// dropScratchBelow forgets the scratch files of dir and of every directory
// below it (after the snapshot or group was removed; "" is all of them).
func (f *FS) dropScratchBelow(dir string) {
	f.scratchMu.Lock()
	defer f.scratchMu.Unlock()
	for k, sd := range f.scratch {
		if dir == "" || k == dir || strings.HasPrefix(k, dir+"/") {
			for _, sf := range sd.files {
				sf.drop()
			}
			delete(f.scratch, k)
		}
	}
}

func (s *scratchFile) Attr(ctx context.Context, a *fuse.Attr) error {
	s.mu.Lock()
	notes := s.notes
	s.mu.Unlock()
	if notes != nil {
		return notes.Attr(ctx, a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	perm := s.perm
	if s.fs.ro {
		perm &^= 0o222
	}
	a.Valid = s.fs.ttl
	a.Inode = s.ino
	a.Mode = perm
	a.Size = uint64(len(s.data))
	if s.link {
		a.Mode = os.ModeSymlink | 0o777
		a.Size = uint64(len(s.target))
	}
	a.Blocks = (a.Size + 511) / 512
	a.Nlink = 1
	a.Uid, a.Gid = s.uid, s.gid
	a.Mtime, a.Ctime, a.Atime = s.mtime, s.ctime, s.mtime
	a.BlockSize = 4096
	return nil
}

func (s *scratchFile) Readlink(ctx context.Context, req *fuse.ReadlinkRequest) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.link {
		return "", errInval
	}
	return s.target, nil
}

// Open: scratch files bypass the page cache like notes (OpenDirectIO); they
// are tiny and a file renamed onto notes must not leave cached pages behind.
func (s *scratchFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	s.mu.Lock()
	notes := s.notes
	s.mu.Unlock()
	if notes != nil {
		return notes.Open(ctx, req, resp)
	}
	if writable(req.Flags) && s.fs.ro {
		return nil, s.fs.readOnlyErr()
	}
	resp.Flags |= fuse.OpenDirectIO
	if req.Flags&fuse.OpenTruncate != 0 && writable(req.Flags) {
		s.mu.Lock()
		_ = s.resizeLocked(0) // shrinking cannot fail
		s.mtime = time.Now()
		s.mu.Unlock()
	}
	return newScratchHandle(s, req.Flags), nil
}

// Setattr stores what it is given (size, mode, owner, times): these files
// are the editors' own and must behave like files on a local disk, or vim
// falls back to other strategies.
func (s *scratchFile) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	s.mu.Lock()
	notes := s.notes
	s.mu.Unlock()
	if notes != nil {
		return notes.Setattr(ctx, req, resp)
	}
	if s.fs.ro {
		return s.fs.readOnlyErr()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if req.Valid.Size() {
		if s.link {
			return errInval
		}
		if req.Size > uint64(s.fs.maxNotes) {
			return errTooBig
		}
		if err := s.resizeLocked(int(req.Size)); err != nil {
			return err
		}
		s.mtime = now
	}
	if req.Valid.Mode() {
		s.perm = req.Mode & os.ModePerm
	}
	if req.Valid.Uid() {
		s.uid = req.Uid
	}
	if req.Valid.Gid() {
		s.gid = req.Gid
	}
	switch {
	case req.Valid.MtimeNow():
		s.mtime = now
	case req.Valid.Mtime():
		s.mtime = req.Mtime
	}
	s.ctime = now
	return nil
}

// Fsync: nothing to sync for a file that lives in memory.
func (s *scratchFile) Fsync(ctx context.Context, req *fuse.FsyncRequest) error {
	s.mu.Lock()
	notes := s.notes
	s.mu.Unlock()
	if notes != nil {
		return notes.Fsync(ctx, req)
	}
	return nil
}

// resize truncates b or extends it with NUL bytes.
func resize(b []byte, size int) []byte {
	if size <= len(b) {
		return b[:size]
	}
	return append(b, make([]byte, size-len(b))...)
}

// scratchHandle is an open scratch file. Once the file was renamed onto
// notes, a descriptor open for writing goes on writing the file it now is:
// at its first request after the rename it joins the notes' write session
// (notesFile.writer), and its reads, writes, closes and release are the
// notes handle's from then on.
type scratchHandle struct {
	s      *scratchFile
	write  bool // open for writing
	append bool

	mu    sync.Mutex
	notes *notesHandle // set once joined
}

var (
	_ fusefs.Handle         = (*scratchHandle)(nil)
	_ fusefs.HandleReader   = (*scratchHandle)(nil)
	_ fusefs.HandleWriter   = (*scratchHandle)(nil)
	_ fusefs.HandleFlusher  = (*scratchHandle)(nil)
	_ fusefs.HandleReleaser = (*scratchHandle)(nil)
)

func newScratchHandle(s *scratchFile, fl fuse.OpenFlags) *scratchHandle {
	return &scratchHandle{s: s, write: writable(fl), append: fl&fuse.OpenAppend != 0}
}

// follow returns the notes handle h acts as, joining the notes' write
// session if its file was renamed onto notes since; nil while it is a
// scratch file's.
func (h *scratchHandle) follow() (*notesHandle, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.notes != nil || !h.write {
		return h.notes, nil
	}
	h.s.mu.Lock()
	n := h.s.notes
	h.s.mu.Unlock()
	if n == nil {
		return nil, nil
	}
	nh, err := n.writer(h.append)
	if err != nil {
		return nil, err
	}
	h.notes = nh
	return nh, nil
}

// joined is the notes handle h acts as if it joined already (a close or
// release does not join: the rename committed what it had written).
func (h *scratchHandle) joined() *notesHandle {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.notes
}

func (h *scratchHandle) Flush(ctx context.Context, req *fuse.FlushRequest) error {
	if nh := h.joined(); nh != nil {
		return nh.Flush(ctx, req)
	}
	return nil
}

func (h *scratchHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	if nh := h.joined(); nh != nil {
		return nh.Release(ctx, req)
	}
	return nil
}

func (h *scratchHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	nh, err := h.follow()
	if err != nil {
		return err
	}
	if nh != nil {
		return nh.Read(ctx, req, resp)
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	resp.Data = slices.Clone(readAt(h.s.data, req.Offset, req.Size))
	return nil
}

func (h *scratchHandle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	nh, err := h.follow()
	if err != nil {
		return err
	}
	if nh != nil {
		return nh.Write(ctx, req, resp)
	}
	s := h.s
	if s.fs.ro {
		return s.fs.readOnlyErr()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	off := req.Offset
	if h.append || req.FileFlags&fuse.OpenAppend != 0 {
		off = int64(len(s.data))
	}
	if off < 0 {
		return errInval
	}
	end := off + int64(len(req.Data))
	if end > int64(s.fs.maxNotes) {
		return errTooBig
	}
	if end > int64(len(s.data)) {
		if err := s.resizeLocked(int(end)); err != nil {
			return err
		}
	}
	copy(s.data[off:], req.Data)
	s.mtime = time.Now()
	s.ctime = s.mtime
	resp.Size = len(req.Data)
	return nil
}
