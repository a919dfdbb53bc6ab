package fs

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// ManifestName is the name of the manifest file in snapshot directories.
const ManifestName = "manifest.json"

// manifestFile is a snapshot's manifest as pretty JSON (the manifest's own
// serialization, plus a newline), read-only. Its times and owner are those
// of index.json.blob; it changes whenever the notes (or anything else in the
// unprotected section) do.
type manifestFile struct {
	readOnlyFile
	d     *snapDir
	cache contentCache
}

var (
	_ fusefs.Node          = (*manifestFile)(nil)
	_ fusefs.NodeOpener    = (*manifestFile)(nil)
	_ fusefs.NodeSetattrer = (*manifestFile)(nil)
	_ fusefs.NodeAccesser  = (*manifestFile)(nil)
	_ fusefs.NodeFsyncer   = (*manifestFile)(nil)
	_ fusefs.NodeForgetter = (*manifestFile)(nil)
)

func newManifestFile(f *FS, d *snapDir) *manifestFile {
	return &manifestFile{readOnlyFile: readOnlyFile{newFileBase(f, &d.dirBase, ManifestName)}, d: d}
}

func (n *manifestFile) Attr(ctx context.Context, a *fuse.Attr) error {
	if n.takePrimed(a) {
		return nil
	}
	_, size, st, err := n.d.lengths()
	if err != nil {
		return n.fs.errno("stat "+n.display(), err)
	}
	n.cache.sawAttr(st)
	n.fs.fileAttr(a, n.ino, size, st, false)
	return nil
}

func (n *manifestFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if writable(req.Flags) || req.Flags&fuse.OpenTruncate != 0 {
		return nil, n.denied()
	}
	data, st, err := n.fs.store.ManifestJSON(n.d.sn)
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	flags, changed := n.cache.openFlags(st)
	resp.Flags |= flags | openNoFlush
	if changed {
		n.fs.invalidateData(n)
	}
	return &bytesHandle{data: data}, nil
}
