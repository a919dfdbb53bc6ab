package fs

import (
	"context"
	"errors"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// snapDir is a snapshot directory: notes and manifest.json, plus the scratch
// files of editors. An unfinished snapshot (no manifest yet: a backup is
// running or failed) lists as empty and looking up its notes or
// manifest.json gives ENOENT; a corrupt one lists both, and both fail with
// EIO (logged with the file name). rmdir of the directory, in the group
// directory, removes the snapshot.
type snapDir struct {
	dirBase
	sn   datastore.Snapshot
	meta snapMeta // what notes and manifest.json show of the manifest (summary.go)
}

var (
	_ fusefs.Node                = (*snapDir)(nil)
	_ fusefs.NodeRequestLookuper = (*snapDir)(nil)
	_ fusefs.NodeOpener          = (*snapDir)(nil)
	_ dirNode                    = (*snapDir)(nil)
	_ editHost                   = (*snapDir)(nil)
	_ fusefs.HandleReadDirAller  = (*snapDir)(nil)
	_ fusefs.NodeForgetter       = (*snapDir)(nil)
	_ fusefs.NodeRemover         = (*snapDir)(nil)
	_ fusefs.NodeMkdirer         = (*snapDir)(nil)
	_ fusefs.NodeCreater         = (*snapDir)(nil)
	_ fusefs.NodeMknoder         = (*snapDir)(nil)
	_ fusefs.NodeSymlinker       = (*snapDir)(nil)
	_ fusefs.NodeRenamer         = (*snapDir)(nil)
	_ fusefs.NodeLinker          = (*snapDir)(nil)
	_ fusefs.NodeSetattrer       = (*snapDir)(nil)
	_ fusefs.NodeFsyncer         = (*snapDir)(nil)
)

func newSnapDir(f *FS, rel string, sn datastore.Snapshot) *snapDir {
	d := &snapDir{dirBase: dirBase{nodeBase: newBase(f, rel)}, sn: sn}
	return d
}

func (d *snapDir) reservedName(name string) bool {
	return name == NotesName || name == ManifestName || d.isArchive(name)
}

func (d *snapDir) newNotes() node { return newSnapNotes(d.fs, d) }

func (d *snapDir) Attr(ctx context.Context, a *fuse.Attr) error { return d.attrOf(d, a) }

// stat is one stat of the directory (datastore.StatSnapshotDir): what is in
// it only matters for what it lists.
func (d *snapDir) stat() (datastore.Stamp, error) { return d.fs.store.StatSnapshotDir(d.sn) }

// Open lets the kernel cache the listing (openDir).
func (d *snapDir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	return openDir(d, resp)
}

func (d *snapDir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	switch req.Name {
	case NotesName:
		return lookupNotes(ctx, d, resp)
	case ManifestName:
		return d.lookupChild(ctx, req.Name, resp, func() node { return newManifestFile(d.fs, d) })
	}
	if n, found, err := d.lookupArchive(ctx, req.Name, resp); found {
		return n, err
	}
	return d.lookupScratch(ctx, req.Name, resp)
}

// ReadDirAll lists notes and manifest.json unless the snapshot is
// unfinished; a corrupt manifest is listed (reading it reports the problem).
// It loads the summary (lengths), which the lookups of notes and
// manifest.json that follow a listing then find fresh: one stat and one
// read of index.json.blob per snapshot directory in a walk.
func (d *snapDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	ents := d.dots()
	_, _, _, err := d.lengths()
	switch {
	case err == nil, errors.Is(err, datastore.ErrCorrupt):
		ents = append(append(ents, d.dirent(ManifestName, fuse.DT_File)), d.notesDirent()...)
	case errors.Is(err, datastore.ErrUnfinished):
	default:
		return nil, d.fs.errno("list "+d.display(), err)
	}
	if err == nil {
		ents = append(ents, d.archiveDirents()...) // archivefile.go
	}
	return append(ents, d.fs.scratchList(d.rel)...), nil
}

// Remove of a file: scratch files only (unlinkIn). rmdir of a pxar
// archive's directory: EPERM, as rm of an archive file.
func (d *snapDir) Remove(ctx context.Context, req *fuse.RemoveRequest) error {
	if req.Dir {
		if d.fs.ro {
			return d.fs.readOnlyErr()
		}
		if d.isArchive(req.Name) {
			return errPerm // root.pxar/: as rm of an archive file
		}
		return errNoEnt
	}
	return unlinkIn(d, req.Name)
}

// The operations shared with the other directory kind holding notes
// (editdir.go).

func (d *snapDir) Create(ctx context.Context, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	return createIn(ctx, d, req, resp)
}

func (d *snapDir) Mknod(ctx context.Context, req *fuse.MknodRequest) (fusefs.Node, error) {
	return mknodIn(d, req)
}

func (d *snapDir) Symlink(ctx context.Context, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	return symlinkIn(d, req)
}

func (d *snapDir) Rename(ctx context.Context, req *fuse.RenameRequest, newDir fusefs.Node) error {
	return renameIn(ctx, d, req, newDir)
}
