package fs

import (
	"context"
	"path"
	"slices"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// nsDir is a namespace directory; the mount root is the root namespace. It
// lists the backup-type directories that exist (vm, ct, host) and "ns" when
// the namespace has child namespaces, exactly as on disk.
type nsDir struct {
	dirBase
	ns datastore.NS
}

var (
	_ fusefs.Node                = (*nsDir)(nil)
	_ fusefs.NodeRequestLookuper = (*nsDir)(nil)
	_ fusefs.NodeOpener          = (*nsDir)(nil)
	_ dirNode                    = (*nsDir)(nil)
	_ fusefs.HandleReadDirAller  = (*nsDir)(nil)
	_ fusefs.NodeForgetter       = (*nsDir)(nil)
	_ fusefs.NodeMkdirer         = (*nsDir)(nil)
	_ fusefs.NodeRemover         = (*nsDir)(nil)
	_ fusefs.NodeCreater         = (*nsDir)(nil)
	_ fusefs.NodeSymlinker       = (*nsDir)(nil)
	_ fusefs.NodeRenamer         = (*nsDir)(nil)
	_ fusefs.NodeSetattrer       = (*nsDir)(nil)
	_ fusefs.NodeFsyncer         = (*nsDir)(nil)
)

// nsDirName is the directory holding a namespace's child namespaces.
const nsDirName = "ns"

func newNSDir(f *FS, ns datastore.NS) *nsDir {
	return &nsDir{dirBase: dirBase{nodeBase: newBase(f, ns.Dir())}, ns: ns}
}

func (d *nsDir) Attr(ctx context.Context, a *fuse.Attr) error { return d.attrOf(d, a) }

func (d *nsDir) stat() (datastore.Stamp, error) { return d.fs.store.StatNamespace(d.ns) }

// Open lets the kernel cache the listing (openDir).
func (d *nsDir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	return openDir(d, resp)
}

func (d *nsDir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	name := req.Name
	switch {
	case datastore.ValidBackupType(name):
		return d.lookupChild(ctx, name, resp, func() node {
			return &typeDir{dirBase: dirBase{nodeBase: newBase(d.fs, path.Join(d.rel, name))}, ns: d.ns, typ: name}
		})
	case name == nsDirName && len(d.ns) < datastore.MaxNamespaceDepth:
		return d.lookupChild(ctx, name, resp, func() node {
			return &nsListDir{dirBase: dirBase{nodeBase: newBase(d.fs, path.Join(d.rel, name))}, ns: d.ns}
		})
	}
	return nil, errNoEnt
}

func (d *nsDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	types, err := d.fs.store.ListTypes(d.ns)
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	children, err := d.fs.store.ListNamespaces(d.ns)
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	names := types
	if len(children) > 0 {
		names = append(names, nsDirName)
		slices.Sort(names)
	}
	ents := d.dots()
	for _, n := range names {
		ents = append(ents, d.dirent(n, fuse.DT_Dir))
	}
	return ents, nil
}
