package fs

import (
	"context"
	"fmt"
	"sync"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
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
	return &manifestHandle{n: n, st: st, data: data, release: func() {}}, nil
}

// manifestHandle reads an opened manifest.json: the JSON of the manifest
// file the open saw (st), loaded at the open or at the first READ.
type manifestHandle struct {
	n       *manifestFile
	st      datastore.Stamp
	release func() // the open's (contentCache.openFlags)

	mu   sync.Mutex
	data []byte // nil until loaded
}

var (
	_ fusefs.Handle       = (*manifestHandle)(nil)
	_ fusefs.HandleReader = (*manifestHandle)(nil)
)

func (h *manifestHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	h.release()
	return nil
}

func (h *manifestHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	data, err := h.load()
	if err != nil {
		return h.n.fs.errno("read "+h.n.display(), err)
	}
	resp.Data = readAt(data, req.Offset, req.Size)
	return nil
}

// load returns the JSON of the manifest the open saw. If the manifest was
// replaced between the open and the first READ (a window of microseconds),
// its new JSON would not match the size the kernel holds for the open:
// ErrStale, and the reader opens again.
func (h *manifestHandle) load() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data != nil {
		return h.data, nil
	}
	data, st, err := h.n.fs.store.ManifestJSON(h.n.d.sn)
	if err != nil {
		return nil, err
	}
	if st.ID().Digest() != h.st.ID().Digest() {
		return nil, fmt.Errorf("%s was replaced since it was opened: %w", h.n.display(), datastore.ErrStale)
	}
	h.data = data
	return data, nil
}
