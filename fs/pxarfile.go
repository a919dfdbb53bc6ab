package fs

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/pxar"
)

// pxarFile is a regular file inside a pxar archive: random-access reads of
// its content (the pxar package finds it in the archive's stream, or in the
// payload stream of a split archive, through the verified chunk reader).
// A missing or damaged chunk, or content that does not match the archive's
// records, gives EIO for the read that touches it and a warning naming the
// file and the offset; never wrong bytes.
type pxarFile struct {
	pxarNode
}

var (
	_ fusefs.Node       = pxarFile{}
	_ fusefs.NodeOpener = pxarFile{}
)

// Open: read-only opens only (EROFS otherwise). The content never changes
// for a node, so the kernel keeps its pages across opens (OpenKeepCache):
// a node is one entry of one opened archive, and an archive replaced in the
// store is shown through new nodes (pxarDir.current), which the kernel
// caches apart.
func (n pxarFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if writable(req.Flags) || req.Flags&fuse.OpenTruncate != 0 {
		return nil, errArchiveRO
	}
	e, err := n.entry()
	if err != nil {
		return nil, err
	}
	resp.Flags |= fuse.OpenKeepCache | openNoFlush
	return &pxarHandle{n: n, e: e}, nil
}

// pxarHandle reads an archived file: its entry, found again by Open,
// locates the content.
type pxarHandle struct {
	n pxarFile
	e *pxar.Entry
}

var (
	_ fusefs.Handle       = (*pxarHandle)(nil)
	_ fusefs.HandleReader = (*pxarHandle)(nil)
)

func (h *pxarHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	readAt := func(p []byte, off int64) (int, error) { return h.n.dir.tree.arch.ReadAt(h.e, p, off) }
	return readInto(req, resp, readAt, func(err error) error { return h.n.dir.fs.errno("read "+h.n.display(), err) })
}
