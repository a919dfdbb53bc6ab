package fs

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// OwnerName is the name of the owner file in group directories.
const OwnerName = "owner"

// ownerFile is a group's owner file ("root@pam\n"), read-only, with the
// file's own attributes. Ownership is changed through PBS, which checks
// permissions and takes the group lock.
type ownerFile struct {
	readOnlyFile
	g     datastore.Group
	cache contentCache
}

var (
	_ fusefs.Node          = (*ownerFile)(nil)
	_ fusefs.NodeOpener    = (*ownerFile)(nil)
	_ fusefs.NodeSetattrer = (*ownerFile)(nil)
	_ fusefs.NodeAccesser  = (*ownerFile)(nil)
	_ fusefs.NodeFsyncer   = (*ownerFile)(nil)
	_ fusefs.NodeForgetter = (*ownerFile)(nil)
)

func newOwnerFile(f *FS, d *groupDir) *ownerFile {
	return &ownerFile{readOnlyFile: readOnlyFile{newFileBase(f, &d.dirBase, OwnerName)}, g: d.g}
}

func (n *ownerFile) Attr(ctx context.Context, a *fuse.Attr) error {
	if n.takePrimed(a) {
		return nil
	}
	text, st, err := n.fs.store.GroupOwner(n.g)
	if err != nil {
		return n.fs.errno("stat "+n.display(), err)
	}
	n.cache.sawAttr(st)
	n.fs.fileAttr(a, n.ino, len(text), st, false)
	return nil
}

func (n *ownerFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if writable(req.Flags) || req.Flags&fuse.OpenTruncate != 0 {
		return nil, n.notWritable()
	}
	text, st, err := n.fs.store.GroupOwner(n.g)
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	flags, changed, release := n.cache.openFlags(st)
	resp.Flags |= flags | openNoFlush
	if changed {
		n.fs.invalidateData(n)
	}
	return &bytesHandle{data: []byte(text), release: release}, nil
}
