package fs

import (
	"context"
	"sync"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// contentCache decides the page-cache flags for files whose content is
// derived from one datastore file (manifest.json from index.json.blob, owner
// from owner): the content only changes when that file's stamp does.
type contentCache struct {
	mu   sync.Mutex
	last datastore.FileID // the content of the last open (40 bytes, not a whole Stamp's 100)
	seen bool
	// pages: the kernel's pages are of last. False after a DirectIO open:
	// the invalidation of the old pages that goes with it runs in the
	// background and may not have happened yet.
	pages bool
	// readers counts the handles open now that read through the page
	// cache (opened without OpenDirectIO), all of them of readerOf: the
	// kernel's pages are shared by every open of the inode, so a handle of
	// other content in the page cache at the same time would tear the
	// reads of both (the soak test's torn manifest.json). Such an open is
	// DirectIO until they are closed.
	readers  int
	readerOf datastore.FileID
	// attr is the digest (datastore.FileID.Digest) of the file the attributes last
	// given to the kernel came from (0: none): the kernel cuts page-cache
	// reads at the size it has, so the page cache is only used for the
	// content those attributes describe.
	attr uint64
}

// sawAttr records that attributes computed from st were given to the
// kernel; every Attr of a node with a contentCache calls it.
func (c *contentCache) sawAttr(st datastore.Stamp) {
	c.mu.Lock()
	c.attr = st.ID().Digest()
	c.mu.Unlock()
}

// openFlags returns the open flags for content with stamp st:
//   - same content as the last open, whose pages the kernel has:
//     OpenKeepCache, the kernel serves the pages it already has (the cheap
//     path for `find | xargs cat`);
//   - first open, or same content as a DirectIO open before: no flag, the
//     kernel drops any pages at the open and reads afresh (a KeepCache open
//     right after a DirectIO one could be served old pages, NUL-padded to
//     the new size, before the invalidation sent in the background lands);
//   - changed since the last open, or not the content the kernel's
//     attributes describe (changed behind the mount, and the revalidator
//     has not told the kernel yet): OpenDirectIO for this open, so that the
//     read is neither served from old pages nor cut to a stale cached size;
//     the attributes are invalidated too (by the caller);
//   - DirectIO as well while handles of other content read through the
//     page cache (see readers).
//
// release must be called when the handle is released.
func (c *contentCache) openFlags(st datastore.Stamp) (flags fuse.OpenResponseFlags, changed bool, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := st.ID()
	switch {
	case k.Digest() != c.attr, c.seen && c.last != k:
		c.last, c.seen, c.pages = k, true, false
		return fuse.OpenDirectIO, true, func() {}
	case c.readers > 0 && c.readerOf != k:
		// Pages of other content are being read: neither keep them nor
		// drop them under their readers.
		return fuse.OpenDirectIO, false, func() {}
	case c.seen && c.pages:
		flags = fuse.OpenKeepCache
	default:
		c.last, c.seen, c.pages = k, true, true
	}
	c.readers++
	c.readerOf = k
	var once sync.Once
	return flags, false, func() {
		once.Do(func() {
			c.mu.Lock()
			c.readers--
			c.mu.Unlock()
		})
	}
}

// openNoFlush is FOPEN_NOFLUSH (Linux 5.16 and later; older kernels ignore
// the bit), which bazil has no name for: the kernel sends no FLUSH request
// when a descriptor of this open is closed. Read-only opens have nothing to
// flush (their handles implement no Flush, or a no-op one), so it saves one
// round trip per close — `cat` of a notes file costs seven requests
// without it. POSIX locks do not need the FLUSH either: bazil does not
// negotiate them, so the kernel keeps locks locally.
const openNoFlush fuse.OpenResponseFlags = 1 << 5

// bytesHandle serves fixed content read at open; release, if any, is the
// open's (contentCache.openFlags).
type bytesHandle struct {
	data    []byte
	release func()
}

func (h *bytesHandle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	if h.release != nil {
		h.release()
	}
	return nil
}

var (
	_ fusefs.Handle       = (*bytesHandle)(nil)
	_ fusefs.HandleReader = (*bytesHandle)(nil)
)

func (h *bytesHandle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	resp.Data = readAt(h.data, req.Offset, req.Size)
	return nil
}

// readOnlyFile holds the answers shared by manifest.json and owner, which
// cannot be changed through the mount.
type readOnlyFile struct {
	nodeBase
}

// notWritable is the errno for any change of a read-only file: EROFS in a
// read-only mount, else EACCES (the file is mode 0444, whoever asks).
func (n *readOnlyFile) notWritable() error {
	if n.fs.ro {
		return n.fs.readOnlyErr()
	}
	return errAccess
}

// Setattr refuses everything, times included: nothing of these files can be
// changed.
func (n *readOnlyFile) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	return n.notWritable()
}

// Access answers access(2) when the kernel does not check permissions
// itself (mounts without default_permissions): write access is refused, so
// that editors and `test -w` see the file as read-only before trying.
func (n *readOnlyFile) Access(ctx context.Context, req *fuse.AccessRequest) error {
	if req.Mask&accessWrite != 0 {
		return n.notWritable()
	}
	return nil
}

// accessWrite is W_OK in an access(2) mask.
const accessWrite = 2

// Fsync has nothing to write (bazil's default would be EIO).
func (n *readOnlyFile) Fsync(ctx context.Context, req *fuse.FsyncRequest) error { return nil }
