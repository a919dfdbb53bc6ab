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

// Open loads the JSON and answers OpenDirectIO, always. The manifest
// changes whenever notes, verify state or protection do (PBS rewrites it
// hundreds of times a second during a busy verify), and the kernel bounds
// a page-cache read by the size it holds for the inode, which an attribute
// reply about a newer manifest can change in the middle of a read of an
// older one: the soak test saw such reads cut short or NUL-padded, 7 in 2
// minutes, and none once every open was DirectIO. A DirectIO read goes to
// this handle until its EOF, so what a reader gets is one whole manifest.
// The price: a warm `cat manifest.json` is a READ round trip more.
func (n *manifestFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if writable(req.Flags) || req.Flags&fuse.OpenTruncate != 0 {
		return nil, n.notWritable()
	}
	data, st, err := n.fs.store.ManifestJSON(n.d.sn)
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	// Still told to the content cache, so that a change the kernel's
	// attributes do not show yet invalidates them.
	_, changed, release := n.cache.openFlags(st)
	release()
	resp.Flags |= fuse.OpenDirectIO | openNoFlush
	if changed {
		n.fs.invalidateData(n)
	}
	return &bytesHandle{data: data, release: func() {}}, nil
}
