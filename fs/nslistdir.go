package fs

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// nsListDir is the "ns" directory of a namespace: one directory per child
// namespace.
type nsListDir struct {
	dirBase
	ns datastore.NS // the parent namespace
}

var (
	_ fusefs.Node                = (*nsListDir)(nil)
	_ fusefs.NodeRequestLookuper = (*nsListDir)(nil)
	_ fusefs.NodeOpener          = (*nsListDir)(nil)
	_ dirNode                    = (*nsListDir)(nil)
	_ fusefs.HandleReadDirAller  = (*nsListDir)(nil)
	_ fusefs.NodeForgetter       = (*nsListDir)(nil)
	_ fusefs.NodeMkdirer         = (*nsListDir)(nil)
	_ fusefs.NodeRemover         = (*nsListDir)(nil)
	_ fusefs.NodeCreater         = (*nsListDir)(nil)
	_ fusefs.NodeSymlinker       = (*nsListDir)(nil)
	_ fusefs.NodeRenamer         = (*nsListDir)(nil)
	_ fusefs.NodeSetattrer       = (*nsListDir)(nil)
	_ fusefs.NodeFsyncer         = (*nsListDir)(nil)
)

func (d *nsListDir) Attr(ctx context.Context, a *fuse.Attr) error { return d.attrOf(d, a) }

func (d *nsListDir) stat() (datastore.Stamp, error) { return d.fs.store.StatNamespacesDir(d.ns) }

// Open lets the kernel cache the listing (openDir).
func (d *nsListDir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	return openDir(d, resp)
}

func (d *nsListDir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	name := req.Name
	child := d.ns.Child(name)
	if !datastore.ValidSafeID(name) || child.Validate() != nil {
		return nil, errNoEnt
	}
	return d.lookupChild(ctx, name, resp, func() node { return newNSDir(d.fs, child) })
}

func (d *nsListDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	names, err := d.fs.store.ListNamespaces(d.ns)
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	ents := d.dots()
	for _, n := range names {
		ents = append(ents, d.dirent(n, fuse.DT_Dir))
	}
	return ents, nil
}
