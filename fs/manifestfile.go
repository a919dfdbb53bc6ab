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

// Open picks the page-cache flags from a stat of the manifest alone. When
// the kernel's pages can be kept (OpenKeepCache: same file as its attributes
// and as the last open), it usually has every byte and sends no READ, so the
// JSON is only loaded if a READ comes (manifestHandle): a store larger than
// the manifest cache would otherwise read and decode its blob at every
// open. Otherwise the JSON is loaded now, as the kernel will read it.
func (n *manifestFile) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if writable(req.Flags) || req.Flags&fuse.OpenTruncate != 0 {
		return nil, n.notWritable()
	}
	st, err := n.fs.store.ManifestStamp(n.d.sn)
	if err != nil {
		return nil, n.fs.errno("open "+n.display(), err)
	}
	flags, changed, release := n.cache.openFlags(st)
	h := &manifestHandle{n: n, st: st}
	if flags&fuse.OpenKeepCache == 0 {
		data, loaded, err := n.fs.store.ManifestJSON(n.d.sn)
		if err != nil {
			release()
			return nil, n.fs.errno("open "+n.display(), err)
		}
		if loaded.ID().Digest() != st.ID().Digest() {
			// Replaced between the stat and the load: serve what was
			// loaded, as a file that changed (DirectIO, invalidation).
			release()
			flags, changed, release = n.cache.openFlags(loaded)
			h.st = loaded
		}
		h.data = data
	}
	h.release = release
	resp.Flags |= flags | openNoFlush
	if changed {
		n.fs.invalidateData(n)
	}
	return h, nil
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
