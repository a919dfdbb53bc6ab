package fs

import (
	"context"
	"io"
	"sync"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// archiveAttrValid is how long the kernel may keep an archive file's
// attributes. An archive never changes once its snapshot is finished, so
// the kernel may keep them (and, with OpenKeepCache, its pages) long; a
// removed snapshot still disappears at once, since the directory entry
// keeps the normal TTL.
const archiveAttrValid = 10 * time.Minute

// archiveFile is the content of one archive of a snapshot, read-only: a
// decoded .blob (qemu-server.conf for qemu-server.conf.blob), a disk image
// (drive-scsi0.img for drive-scsi0.img.fidx) or a stream (root.pxar for
// root.pxar.didx). Its times and owner are those of the archive file.
// Reading verifies every chunk; a chunk that is missing or fails
// verification gives EIO for the read that touches it (with a warning
// naming the chunk), never wrong bytes. An index or blob that does not
// match the manifest gives EIO at open. Encrypted archives without the key
// (or with another key) give EACCES at open.
type archiveFile struct {
	readOnlyFile
	sn    datastore.Snapshot
	name  string
	cache contentCache

	mu   sync.Mutex
	arch *datastore.Archive // the archive last opened, kept while its file is unchanged
}

var (
	_ fusefs.Node          = (*archiveFile)(nil)
	_ fusefs.NodeOpener    = (*archiveFile)(nil)
	_ fusefs.NodeSetattrer = (*archiveFile)(nil)
	_ fusefs.NodeAccesser  = (*archiveFile)(nil)
	_ fusefs.NodeFsyncer   = (*archiveFile)(nil)
	_ fusefs.NodeForgetter = (*archiveFile)(nil)
)

func newArchiveFile(f *FS, d *snapDir, name string) *archiveFile {
	return &archiveFile{readOnlyFile: readOnlyFile{newBase(f, d.rel+"/"+name)}, sn: d.sn, name: name}
}

// archive returns the opened archive for the file with stamp st, opening
// (and so checking against the manifest) only when the file changed.
func (n *archiveFile) archive(st datastore.Stamp) (*datastore.Archive, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.arch != nil && n.arch.Stamp().ID() == st.ID() {
		return n.arch, nil
	}
	a, err := n.fs.store.OpenArchive(n.sn, n.name)
	if err != nil {
		return nil, err
	}
	n.arch = a
	return a, nil
}

// Attr: one stat of the archive file. The size of an index archive is the
// manifest's; a blob is decoded (once per file identity) for its size.
func (n *archiveFile) Attr(ctx context.Context, a *fuse.Attr) error {
	if n.takePrimed(a) {
		return nil
	}
	info, st, err := n.fs.store.StatArchive(n.sn, n.name)
	if err != nil {
		return n.fs.errno("stat "+n.display(), err)
	}
	size := int64(info.Size)
	if info.Kind == datastore.BlobArchive {
		arch, err := n.archive(st)
		if err != nil {
			return n.fs.errno("stat "+n.display(), err)
		}
		size = arch.Size()
	}
	n.cache.sawAttr(st)
	n.fs.fileAttr(a, n.ino, int(size), st, false)
	a.Valid = max(a.Valid, archiveAttrValid)
	return nil
}

func (n *archiveFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if writable(req.Flags) || req.Flags&fuse.OpenTruncate != 0 {
		return nil, n.notWritable()
	}
	_, st, err := n.fs.store.StatArchive(n.sn, n.name)
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	arch, err := n.archive(st)
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	if err := arch.Readable(); err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	flags, changed, release := n.cache.openFlags(arch.Stamp())
	resp.Flags |= flags | openNoFlush // nothing to flush: saves a round trip per close
	if changed {
		n.fs.invalidateData(n)
	}
	return &archiveHandle{n: n, arch: arch, release: release}, nil
}

// archiveHandle reads an opened archive.
type archiveHandle struct {
	n       *archiveFile
	arch    *datastore.Archive
	release func() // the open's (contentCache.openFlags)
}

func (h *archiveHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	h.release()
	return nil
}

var (
	_ fusefs.Handle       = (*archiveHandle)(nil)
	_ fusefs.HandleReader = (*archiveHandle)(nil)
)

// Read serves a range, copied into the reply buffer bazil provides (the
// chunk memory it comes from is reused once the cache drops the chunk).
func (h *archiveHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	return readInto(req, resp, h.arch.ReadAt, func(err error) error { return h.n.fs.errno("read "+h.n.display(), err) })
}

// readInto answers a READ from readAt, into the reply buffer bazil
// provides (grown if it is too small); io.EOF is a short read, any other
// error goes through errno.
func readInto(req *fuse.ReadRequest, resp *fuse.ReadResponse, readAt func(p []byte, off int64) (int, error), errno func(error) error) error {
	buf := resp.Data[:0]
	if cap(buf) < req.Size {
		buf = make([]byte, 0, req.Size)
	}
	n, err := readAt(buf[:req.Size], req.Offset)
	if err != nil && err != io.EOF {
		return errno(err)
	}
	resp.Data = buf[:n]
	return nil
}

// archiveList returns the archives to show in a finished snapshot (none
// unless the store has archives enabled, and none that would hide notes or
// manifest.json).
func (d *snapDir) archiveList() ([]datastore.ArchiveInfo, error) {
	if !d.fs.store.ArchivesEnabled() {
		return nil, nil
	}
	list, _, err := d.fs.store.ListArchives(d.sn)
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, a := range list {
		if a.Name != NotesName && a.Name != ManifestName {
			out = append(out, a)
		}
	}
	return out, nil
}

// isArchive reports whether name is shown as an archive: such names are
// reserved like notes (no scratch file of that name, no rename onto or
// away from it, rm gives EPERM).
func (d *snapDir) isArchive(name string) bool {
	_, ok := d.findArchive(name)
	return ok
}

// findArchive returns the archive shown as name, if there is one.
func (d *snapDir) findArchive(name string) (datastore.ArchiveInfo, bool) {
	if name == NotesName || name == ManifestName {
		return datastore.ArchiveInfo{}, false
	}
	info, err := d.fs.store.FindArchive(d.sn, name)
	return info, err == nil
}

// archiveDirents lists the archives after notes and manifest.json: files,
// and directories for pxar archives (pxardir.go); a snapshot whose manifest
// cannot be read lists none.
func (d *snapDir) archiveDirents() []fuse.Dirent {
	list, err := d.archiveList()
	if err != nil {
		return nil
	}
	ents := make([]fuse.Dirent, len(list))
	for i, a := range list {
		typ := fuse.DT_File
		if a.Kind == datastore.PxarArchive {
			typ = fuse.DT_Dir
		}
		ents[i] = d.dirent(a.Name, typ)
	}
	return ents
}

// lookupArchive looks name up among the archives; found is false when it
// is not one (the caller goes on with scratch files).
func (d *snapDir) lookupArchive(ctx context.Context, name string, resp *fuse.LookupResponse) (n fusefs.Node, found bool, err error) {
	info, ok := d.findArchive(name)
	if !ok {
		return nil, false, nil
	}
	mk := func() node { return newArchiveFile(d.fs, d, name) }
	if info.Kind == datastore.PxarArchive {
		mk = func() node { return newPxarRoot(d.fs, d, name) }
	}
	n, err = d.lookupChild(ctx, name, resp, mk)
	return n, true, err
}
