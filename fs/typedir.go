package fs

import (
	"context"
	"path"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// typeDir is a backup-type directory (vm, ct or host) of a namespace: one
// directory per backup group. rmdir of an empty group removes the group.
type typeDir struct {
	dirBase
	ns  datastore.NS
	typ string
}

var (
	_ fusefs.Node                = (*typeDir)(nil)
	_ fusefs.NodeRequestLookuper = (*typeDir)(nil)
	_ fusefs.NodeOpener          = (*typeDir)(nil)
	_ dirNode                    = (*typeDir)(nil)
	_ fusefs.HandleReadDirAller  = (*typeDir)(nil)
	_ fusefs.NodeForgetter       = (*typeDir)(nil)
	_ fusefs.NodeRemover         = (*typeDir)(nil)
	_ fusefs.NodeMkdirer         = (*typeDir)(nil)
	_ fusefs.NodeCreater         = (*typeDir)(nil)
	_ fusefs.NodeSymlinker       = (*typeDir)(nil)
	_ fusefs.NodeRenamer         = (*typeDir)(nil)
	_ fusefs.NodeSetattrer       = (*typeDir)(nil)
	_ fusefs.NodeFsyncer         = (*typeDir)(nil)
)

func (d *typeDir) Attr(ctx context.Context, a *fuse.Attr) error { return d.attrOf(d, a) }

func (d *typeDir) stat() (datastore.Stamp, error) { return d.fs.store.StatType(d.ns, d.typ) }

// Open lets the kernel cache the listing (openDir).
func (d *typeDir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	return openDir(d, resp)
}

func (d *typeDir) group(id string) datastore.Group {
	return datastore.Group{NS: d.ns, Type: d.typ, ID: id}
}

func (d *typeDir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	name := req.Name
	if !datastore.ValidBackupID(name) {
		return nil, errNoEnt
	}
	return d.lookupChild(ctx, name, resp, func() node {
		return newGroupDir(d.fs, d, path.Join(d.rel, name), d.group(name))
	})
}

func (d *typeDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	ids, err := d.fs.store.ListGroups(d.ns, d.typ)
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	ents := d.dots()
	for _, id := range ids {
		ents = append(ents, d.dirent(id, fuse.DT_Dir))
	}
	return ents, nil
}

// Remove of a group directory (rmdir) removes the group, which PBS only
// allows once it holds no snapshot: ENOTEMPTY while it has some, EBUSY
// while a backup of it runs.
func (d *typeDir) Remove(ctx context.Context, req *fuse.RemoveRequest) error {
	if d.fs.ro {
		return d.fs.readOnlyErr()
	}
	if !req.Dir || !datastore.ValidBackupID(req.Name) {
		return d.notSupported()
	}
	g := d.group(req.Name)
	if err := d.fs.store.RemoveGroup(g); err != nil {
		return d.fs.errno("rmdir "+d.display()+"/"+req.Name, err)
	}
	d.kids.drop(req.Name)
	d.fs.dropScratchBelow(g.Dir())
	d.fs.invalidateEntry(d, req.Name)
	return nil
}
