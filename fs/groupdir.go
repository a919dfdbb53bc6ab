package fs

import (
	"context"
	"errors"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// groupDir is a backup group: notes (the group notes, read-write), owner
// (read-only), one directory per snapshot, and editors' scratch files. rmdir
// of a snapshot directory removes the snapshot (PBS "forget").
type groupDir struct {
	dirBase
	g      datastore.Group
	parent *typeDir
}

var (
	_ fusefs.Node                = (*groupDir)(nil)
	_ fusefs.NodeRequestLookuper = (*groupDir)(nil)
	_ fusefs.NodeOpener          = (*groupDir)(nil)
	_ dirNode                    = (*groupDir)(nil)
	_ editHost                   = (*groupDir)(nil)
	_ fusefs.HandleReadDirAller  = (*groupDir)(nil)
	_ fusefs.NodeForgetter       = (*groupDir)(nil)
	_ fusefs.NodeRemover         = (*groupDir)(nil)
	_ fusefs.NodeMkdirer         = (*groupDir)(nil)
	_ fusefs.NodeCreater         = (*groupDir)(nil)
	_ fusefs.NodeMknoder         = (*groupDir)(nil)
	_ fusefs.NodeSymlinker       = (*groupDir)(nil)
	_ fusefs.NodeRenamer         = (*groupDir)(nil)
	_ fusefs.NodeLinker          = (*groupDir)(nil)
	_ fusefs.NodeSetattrer       = (*groupDir)(nil)
	_ fusefs.NodeFsyncer         = (*groupDir)(nil)
)

func newGroupDir(f *FS, parent *typeDir, rel string, g datastore.Group) *groupDir {
	d := &groupDir{dirBase: dirBase{nodeBase: newBase(f, rel)}, g: g, parent: parent}
	return d
}

func (d *groupDir) reservedName(name string) bool {
	return name == NotesName || name == OwnerName || datastore.ValidBackupTime(name)
}

func (d *groupDir) newNotes() node { return newGroupNotes(d.fs, d) }

func (d *groupDir) Attr(ctx context.Context, a *fuse.Attr) error { return d.attrOf(d, a) }

func (d *groupDir) stat() (datastore.Stamp, error) { return d.fs.store.StatGroup(d.g) }

// Open lets the kernel cache the listing (openDir).
func (d *groupDir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	return openDir(d, resp)
}

func (d *groupDir) snapshot(name string) datastore.Snapshot {
	return datastore.Snapshot{Group: d.g, Time: name}
}

func (d *groupDir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	name := req.Name
	switch {
	case name == NotesName:
		return lookupNotes(ctx, d, resp)
	case name == OwnerName:
		return d.lookupChild(ctx, name, resp, func() node { return newOwnerFile(d.fs, d) })
	case datastore.ValidBackupTime(name):
		return d.lookupChild(ctx, name, resp, func() node {
			return newSnapDir(d.fs, d.rel+"/"+name, d.snapshot(name))
		})
	}
	return d.lookupScratch(ctx, name, resp)
}

func (d *groupDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	snaps, err := d.fs.store.ListSnapshots(d.g)
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	ents := append(d.dots(), d.notesDirent()...)
	if _, _, err := d.fs.store.GroupOwner(d.g); err == nil {
		ents = append(ents, d.dirent(OwnerName, fuse.DT_File))
	} else if !errors.Is(err, datastore.ErrNotFound) {
		// Listed anyway: looking it up reports the problem.
		ents = append(ents, d.dirent(OwnerName, fuse.DT_File))
	}
	for _, s := range snaps {
		ents = append(ents, d.dirent(s, fuse.DT_Dir))
	}
	return append(ents, d.fs.scratchList(d.rel)...), nil
}

// Remove: rmdir of a snapshot directory removes the snapshot the way PBS's
// forget does (EBUSY while a backup, restore, verify or sync holds it, EPERM
// when protected); unlink removes scratch files only.
func (d *groupDir) Remove(ctx context.Context, req *fuse.RemoveRequest) error {
	if !req.Dir {
		return unlinkIn(d, req.Name)
	}
	if d.fs.ro {
		return d.fs.readOnlyErr()
	}
	if !datastore.ValidBackupTime(req.Name) {
		return errNoEnt
	}
	sn := d.snapshot(req.Name)
	ctx, stop := userInterrupt(ctx, req.Pid)
	defer stop()
	if err := d.fs.store.RemoveSnapshot(ctx, sn); err != nil {
		return d.fs.errno("rmdir "+d.display()+"/"+req.Name, err)
	}
	d.kids.drop(req.Name)
	d.fs.dropScratchBelow(sn.Dir())
	d.fs.invalidateEntry(d, req.Name)
	// PBS (run scheme) removes a group whose last snapshot went; then the
	// group directory must vanish from the kernel's cache too.
	if _, err := d.fs.store.StatGroup(d.g); errors.Is(err, datastore.ErrNotFound) {
		d.fs.dropScratchBelow(d.g.Dir())
		if d.parent != nil {
			d.parent.kids.drop(d.g.ID)
			d.fs.invalidateEntry(d.parent, d.g.ID)
			d.fs.invalidateData(d.parent) // its cached listing
		}
	}
	return nil
}

// The operations shared with the other directory kind holding notes
// (editdir.go).

func (d *groupDir) Create(ctx context.Context, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	return createIn(ctx, d, req, resp)
}

func (d *groupDir) Mknod(ctx context.Context, req *fuse.MknodRequest) (fusefs.Node, error) {
	return mknodIn(d, req)
}

func (d *groupDir) Symlink(ctx context.Context, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	return symlinkIn(d, req)
}

func (d *groupDir) Rename(ctx context.Context, req *fuse.RenameRequest, newDir fusefs.Node) error {
	return renameIn(ctx, d, req, newDir)
}
