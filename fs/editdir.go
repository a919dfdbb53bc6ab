package fs

import (
	"context"
	"syscall"
	"time"
	"unicode/utf8"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// editHost is a directory with a notes file and room for the scratch files
// editors create while saving it (scratch.go): snapDir and groupDir. The
// operations in this file are what both share; each directory calls them
// with itself, as the directory whose notes and names they are and as the
// node the kernel knows (for invalidations, and for telling a rename within
// the directory from one to elsewhere).
//
// Rename is where saving happens for editors that write a new file and
// rename it over the old one (sed -i, vim with 'backupcopy' off, many GUI
// editors): renaming a scratch file onto notes commits its text as the new
// notes in one locked update and the scratch file is gone. Renaming notes
// away (vim's and Emacs's "notes~" backups) leaves a scratch copy of the
// old text under the new name and notes itself stays, readable and
// writable, since the notes of a snapshot cannot cease to exist.
//
// Unlinking notes (mv from another file system unlinks the target before
// it copies, as do cp --remove-destination and install) changes nothing in
// the datastore: notes disappears from this directory until it is created
// again, and creating it starts an empty text that is committed, as any
// write of notes, on fsync and close. A notes never created again keeps its
// stored text (shown again after a remount).
type editHost interface {
	dirNode
	// reservedName reports whether name is not free for scratch files.
	reservedName(name string) bool
	// newNotes makes the notes node for the child cache.
	newNotes() node
}

// notesNode returns h's notes node: the cached one (whose write session a
// commit must see) or a transient one.
func notesNode(h editHost) *notesFile {
	if n, ok := h.dir().kids.peek(NotesName); ok {
		return n.(*notesFile)
	}
	return h.newNotes().(*notesFile)
}

// lookupNotes is Lookup of notes (ENOENT while it is unlinked).
func lookupNotes(ctx context.Context, h editHost, resp *fuse.LookupResponse) (fusefs.Node, error) {
	d := h.dir()
	if d.fs.notesUnlinked(d.rel) {
		return nil, errNoEnt
	}
	return d.lookupChild(ctx, NotesName, resp, h.newNotes)
}

// notesDirent is the listing entry of notes, none while it is unlinked.
func (d *dirBase) notesDirent() []fuse.Dirent {
	if d.fs.notesUnlinked(d.rel) {
		return nil
	}
	return []fuse.Dirent{d.dirent(NotesName, fuse.DT_File)}
}

// lookupScratch is the fallback of Lookup for names that are not reserved.
func (d *dirBase) lookupScratch(ctx context.Context, name string, resp *fuse.LookupResponse) (fusefs.Node, error) {
	sf := d.fs.scratchLookup(d.rel, name)
	if sf == nil {
		return nil, errNoEnt
	}
	if err := sf.Attr(ctx, &resp.Attr); err != nil {
		return nil, err
	}
	resp.EntryValid = d.fs.ttl
	return sf, nil
}

// checkNewName refuses names that cannot become scratch files.
func checkNewName(h editHost, name string) error {
	d := h.dir()
	if err := d.fs.writeRefused("create " + name); err != nil {
		return err
	}
	if h.reservedName(name) || name == "." || name == ".." {
		return errPerm
	}
	return nil
}

// Create makes a scratch file, or notes again after it was unlinked.
func createIn(ctx context.Context, h editHost, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	d := h.dir()
	if req.Name == NotesName && !d.fs.ro && d.fs.notesUnlinked(d.rel) {
		return recreateNotes(ctx, h, req, resp)
	}
	if err := checkNewName(h, req.Name); err != nil {
		return nil, nil, err
	}
	if !req.Mode.IsRegular() {
		return nil, nil, errPerm
	}
	sf := d.fs.newScratch(d.rel, req.Name, req.Mode&^req.Umask, req.Uid, req.Gid)
	if err := d.fs.scratchAdd(d.rel, req.Name, sf, false); err != nil {
		return nil, nil, err
	}
	d.fs.log.Debug("scratch file created", "file", sf.display())
	resp.Flags |= fuse.OpenDirectIO
	resp.EntryValid = d.fs.ttl
	return sf, newScratchHandle(sf, req.Flags), nil
}

// Mknod makes an empty scratch file (NFS servers and some tools create
// files this way); other node types are refused.
func mknodIn(h editHost, req *fuse.MknodRequest) (fusefs.Node, error) {
	d := h.dir()
	if err := checkNewName(h, req.Name); err != nil {
		return nil, err
	}
	if !req.Mode.IsRegular() {
		return nil, errPerm
	}
	sf := d.fs.newScratch(d.rel, req.Name, req.Mode&^req.Umask, req.Uid, req.Gid)
	if err := d.fs.scratchAdd(d.rel, req.Name, sf, false); err != nil {
		return nil, err
	}
	return sf, nil
}

// Symlink makes a scratch symlink (Emacs's lock file ".#notes").
func symlinkIn(h editHost, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	d := h.dir()
	if err := checkNewName(h, req.NewName); err != nil {
		return nil, err
	}
	sf := d.fs.newScratch(d.rel, req.NewName, 0o777, req.Uid, req.Gid)
	sf.link, sf.target = true, req.Target
	if err := d.fs.scratchAdd(d.rel, req.NewName, sf, false); err != nil {
		return nil, err
	}
	return sf, nil
}

// unlinkIn is unlink in h: scratch files go; notes goes from this
// directory only, until it is created again (see editHost); the
// other reserved names stay (EPERM, deliberately, so that `rm -r` of a
// snapshot fails at manifest.json instead of looking like it worked).
func unlinkIn(h editHost, name string) error {
	d := h.dir()
	if d.fs.ro {
		return d.fs.readOnlyErr()
	}
	if name == NotesName {
		n := notesNode(h)
		if _, _, err := n.src.load(); err != nil {
			return d.fs.errno("unlink "+n.display(), err)
		}
		if !d.fs.setNotesUnlinked(d.rel, true) {
			return errNoEnt
		}
		d.fs.log.Debug("notes unlinked: hidden until created again, stored notes unchanged", "file", n.display())
		return nil
	}
	if h.reservedName(name) {
		return errPerm
	}
	if d.fs.scratchRemove(d.rel, name) == nil {
		return errNoEnt
	}
	return nil
}

// renameIn is rename within h; see editHost. Renames to another directory
// are EXDEV (mv then copies, which ends in the same operations here).
func renameIn(ctx context.Context, h editHost, req *fuse.RenameRequest, newDir fusefs.Node) error {
	ctx, stop := userInterrupt(ctx, req.Pid)
	defer stop()
	d := h.dir()
	if err := d.fs.writeRefused("rename " + req.OldName); err != nil {
		return err
	}
	if newDir != fusefs.Node(h) {
		return fuse.Errno(syscall.EXDEV)
	}
	from, to := req.OldName, req.NewName
	switch {
	case from == to:
		return nil
	case from == NotesName:
		if h.reservedName(to) {
			return errPerm
		}
		if d.fs.notesUnlinked(d.rel) {
			return errNoEnt
		}
		return backupNotes(h, to)
	case h.reservedName(from):
		return errPerm
	}
	sf := d.fs.scratchLookup(d.rel, from)
	if sf == nil {
		return errNoEnt
	}
	switch {
	case to == NotesName:
		return commitScratch(ctx, h, from, sf)
	case h.reservedName(to):
		return errPerm
	}
	if err := d.fs.scratchAdd(d.rel, to, sf, true); err != nil {
		return err
	}
	d.fs.scratchRemove(d.rel, from)
	return nil
}

// backupNotes is rename(notes, to): a scratch file to with the committed
// text and the notes file's attributes; notes stays as it is.
func backupNotes(h editHost, to string) error {
	d := h.dir()
	n := notesNode(h)
	text, st, err := n.src.load()
	if err != nil {
		return d.fs.errno("rename "+n.display(), err)
	}
	sf := d.fs.newScratch(d.rel, to, 0o644, st.UID, st.GID)
	sf.data = []byte(text)
	sf.mtime, sf.ctime = st.Mtime, time.Now()
	if err := d.fs.scratchAdd(d.rel, to, sf, true); err != nil {
		return err
	}
	// The kernel now has the notes node under the name "to"; make it look
	// "to" up again, which finds the copy.
	d.fs.invalidateEntry(h, to)
	d.fs.log.Debug("notes renamed away: kept notes, made a scratch copy", "dir", d.display(), "copy", to)
	return nil
}

// commitScratch is rename(scratch, notes): the scratch file's text becomes
// the notes in one locked update, unconditionally (the renamer replaces the
// file as a whole, as rename does on a local disk).
func commitScratch(ctx context.Context, h editHost, from string, sf *scratchFile) error {
	d := h.dir()
	sf.mu.Lock()
	if sf.link {
		sf.mu.Unlock()
		return errPerm
	}
	text := string(sf.data)
	sf.mu.Unlock()
	if !utf8.ValidString(text) {
		return errIllegal
	}
	if len(text) > d.fs.maxNotes {
		return errTooBig
	}
	n := notesNode(h)
	n.mu.Lock()
	err := n.src.replace(ctx, nil, text)
	if err == nil && n.sess != nil {
		n.sess.replaced(text)
	}
	n.mu.Unlock()
	if err != nil {
		return d.fs.errno("rename "+sf.display()+" to notes", err)
	}
	d.fs.scratchRemove(d.rel, from)
	d.fs.setNotesUnlinked(d.rel, false)
	sf.mu.Lock()
	sf.notes = n
	sf.mu.Unlock()
	n.afterCommit()
	// The kernel now has the scratch node under the name "notes"; make it
	// look notes up again, which finds the notes node.
	d.fs.invalidateEntry(h, NotesName)
	d.fs.log.Debug("notes replaced by rename", "file", n.display(), "from", from, "bytes", len(text))
	return nil
}

// recreateNotes is Create of notes after it was unlinked: the notes node
// with a write session that starts empty (as O_TRUNC does), committed on
// fsync and close like every write of notes; an empty file commits empty
// notes. Until then the stored text is untouched.
func recreateNotes(ctx context.Context, h editHost, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	d := h.dir()
	if !req.Mode.IsRegular() {
		return nil, nil, errPerm
	}
	kid, _ := d.kids.get(d, NotesName, h.newNotes)
	n := kid.(*notesFile)
	flags := req.Flags | fuse.OpenTruncate
	if !writable(flags) {
		flags = flags&^fuse.OpenAccessModeMask | fuse.OpenReadWrite
	}
	if err := n.Attr(ctx, &resp.Attr); err != nil {
		return nil, nil, err
	}
	fh, err := n.Open(ctx, &fuse.OpenRequest{Header: req.Header, Flags: flags}, &resp.OpenResponse)
	if err != nil {
		return nil, nil, err
	}
	resp.Attr.Size, resp.Attr.Blocks = 0, 0 // the new file starts empty
	d.fs.setNotesUnlinked(d.rel, false)
	resp.EntryValid = d.fs.ttl
	d.fs.log.Debug("notes created again after unlink", "file", n.display())
	return n, fh, nil
}
