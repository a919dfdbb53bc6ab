package fs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
	"golang.org/x/sync/semaphore"

	"pbsfs/datastore"
)

// DefaultTTL is how long the kernel may cache attributes, directory entries
// and listings while the revalidator runs (revalidate.go): long, so that
// repeated walks are served by the kernel, since every change is
// invalidated explicitly — pbsfs's own at once, PBS's within the recheck
// interval.
const DefaultTTL = 10 * time.Minute

// NoRecheckTTL is the TTL when the revalidator is off (Options.Recheck < 0):
// changes PBS makes then show after at most this long.
const NoRecheckTTL = time.Second

// Options configure New.
type Options struct {
	// ReadOnly presents every file and directory without write permission
	// and refuses every change with EROFS. The mount itself should also be
	// read-only (MountOptions does that).
	ReadOnly bool
	// TTL is the attribute and entry validity handed to the kernel;
	// 0 means DefaultTTL, or NoRecheckTTL when Recheck is negative.
	TTL time.Duration
	// Recheck is the interval at which Revalidate looks for changes made
	// behind pbsfs's back; 0 means DefaultRecheck, negative turns the
	// revalidator off (and with it the kernel's caching of listings).
	Recheck time.Duration
	// MaxNotesSize bounds a notes text being written (EFBIG beyond);
	// 0 means datastore.MaxNotesSize, the limit the datastore enforces.
	MaxNotesSize int
	// MaxScratchBytes bounds the content of all editors' scratch files of
	// the mount together (ENOSPC beyond; see scratch.go); 0 means
	// DefaultMaxScratchBytes.
	MaxScratchBytes int64
	// PxarCap bounds the archive entries the kernel may hold looked up
	// (pxarcap.go); 0 means DefaultPxarCap, negative no bound.
	PxarCap int
	// Logger receives error and debug lines; nil discards them.
	Logger *slog.Logger
}

// FS is the file system. It implements bazil's fs.FS and fs.FSStatfser.
type FS struct {
	store   *datastore.Store
	ro      bool
	ttl     time.Duration
	recheck time.Duration // <0: no revalidator
	// cacheDirs lets the kernel cache directory listings (openDir); only
	// with the revalidator, which invalidates them.
	cacheDirs bool
	maxNotes  int
	// xattrs: the mount shows archives, whose pxar trees have xattrs, so
	// every node answers xattr requests (xattr.go).
	xattrs bool
	log    *slog.Logger
	root   *nsDir

	srv atomic.Pointer[fusefs.Server]

	// scratch holds the editors' scratch files per directory (see
	// scratch.go). It lives here and not in the directory nodes because
	// the kernel may forget a directory node while scratch files in it are
	// still expected to exist.
	scratchMu    sync.Mutex
	scratch      map[string]*scratchDir // key: the directory's relative path
	scratchBytes *semaphore.Weighted    // budget of scratch content, maxScratch bytes
	maxScratch   int64

	pxarCap pxarCap // see pxarcap.go

	warnedMu sync.Mutex
	warned   map[string]struct{} // see warnOnce
}

var (
	_ fusefs.FS          = (*FS)(nil)
	_ fusefs.FSStatfser  = (*FS)(nil)
	_ fusefs.FSDestroyer = (*FS)(nil)
)

// New returns the file system for an open datastore. The store's own
// read-only flag is honoured as well as o.ReadOnly.
func New(store *datastore.Store, o Options) *FS {
	f := &FS{
		store:    store,
		ro:       o.ReadOnly || store.ReadOnly(),
		ttl:      o.TTL,
		maxNotes: o.MaxNotesSize,
		xattrs:   store.ArchivesEnabled(),
		log:      o.Logger,
		scratch:  map[string]*scratchDir{},
		warned:   map[string]struct{}{},
	}
	f.recheck = o.Recheck
	if f.recheck == 0 {
		f.recheck = DefaultRecheck
	}
	f.cacheDirs = f.recheck > 0
	if f.ttl <= 0 {
		f.ttl = DefaultTTL
		if f.recheck < 0 {
			f.ttl = NoRecheckTTL
		}
	}
	if f.maxNotes <= 0 {
		f.maxNotes = datastore.MaxNotesSize
	}
	f.maxScratch = o.MaxScratchBytes
	if f.maxScratch <= 0 {
		f.maxScratch = DefaultMaxScratchBytes
	}
	f.scratchBytes = semaphore.NewWeighted(f.maxScratch)
	f.pxarCap = pxarCap{fs: f, limit: o.PxarCap}
	if o.PxarCap == 0 {
		f.pxarCap.limit = DefaultPxarCap
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.root = &nsDir{dirBase: dirBase{nodeBase: nodeBase{fs: f, rel: "", ino: rootInode}}}
	return f
}

// MountOptions returns the bazil mount options pbsfs mounts with: FSName and
// Subtype "pbsfs", ReadOnly for read-only mounts, and AllowOther together
// with DefaultPermissions (the kernel then enforces the modes shown, so other
// users can read notes but not change them).
//
// AsyncRead lets the kernel's readahead have several reads of a file in
// flight (bazil serves each in its own goroutine), so a sequential reader
// of a disk image no longer waits for one 128 KiB round trip after the
// other. It only concerns reads through the page cache (archives,
// manifest.json, owner, notes opened with OpenKeepCache): every read handler
// is safe for concurrent use, as reads from several processes always were.
// Direct-I/O opens (notes after a change, notes writers, scratch files) are
// unaffected. MaxReadahead is 128 KiB because the INIT negotiation can only
// lower the kernel's default; the command raises the mount's read-ahead
// afterwards through sysfs (cmd/pbsfs, --read-ahead, 1 MiB by default).
func MountOptions(readOnly, allowOther bool) []fuse.MountOption {
	opts := []fuse.MountOption{
		fuse.FSName("pbsfs"),
		fuse.Subtype("pbsfs"),
		fuse.MaxReadahead(128 << 10),
		fuse.AsyncRead(),
	}
	if readOnly {
		opts = append(opts, fuse.ReadOnly())
	}
	if allowOther {
		opts = append(opts, fuse.AllowOther(), fuse.DefaultPermissions())
	}
	return opts
}

// SetServer gives the file system the server it is served by, so that it
// can invalidate kernel caches after changes (removed snapshots, committed
// notes). Without it nothing is invalidated and changes show after the TTL.
func (f *FS) SetServer(s *fusefs.Server) { f.srv.Store(s) }

// Store is the datastore being served.
func (f *FS) Store() *datastore.Store { return f.store }

// Root implements fusefs.FS.
func (f *FS) Root() (fusefs.Node, error) { return f.root, nil }

// Statfs reports the datastore file system's numbers, so df shows the space
// left for backups.
func (f *FS) Statfs(ctx context.Context, req *fuse.StatfsRequest, resp *fuse.StatfsResponse) error {
	st, err := f.store.Statfs()
	if err != nil {
		return f.errno("statfs", err)
	}
	resp.Blocks = st.Blocks
	resp.Bfree = st.Bfree
	resp.Bavail = st.Bavail
	resp.Files = st.Files
	resp.Ffree = st.Ffree
	resp.Bsize = uint32(st.Bsize)
	resp.Frsize = uint32(st.Frsize)
	resp.Namelen = 255
	return nil
}

// Destroy implements fusefs.FSDestroyer (sent only for fuseblk mounts on
// Linux, so mostly never); it drops the scratch files.
func (f *FS) Destroy() { f.dropScratchBelow("") }

// invalidateEntry tells the kernel to forget its cached entry name in dir.
// It runs in a goroutine: the kernel may hold dir's lock for the very
// request being answered, and the invalidation waits for that lock.
func (f *FS) invalidateEntry(dir fusefs.Node, name string) {
	srv := f.srv.Load()
	if srv == nil {
		return
	}
	go func() {
		if err := srv.InvalidateEntry(dir, name); err != nil && !errors.Is(err, fuse.ErrNotCached) {
			f.log.Debug("cannot invalidate kernel entry", "name", name, "err", err)
		}
	}()
}

// invalidateData tells the kernel that a node's attributes and content
// changed (page cache and attribute cache).
func (f *FS) invalidateData(n fusefs.Node) { f.invalidateNode(n, true) }

// invalidateAttr tells the kernel that a node's attributes changed.
func (f *FS) invalidateAttr(n fusefs.Node) { f.invalidateNode(n, false) }

// invalidateNode is invalidateData (data true) or invalidateAttr.
// Asynchronous for the same reason as invalidateEntry.
func (f *FS) invalidateNode(n fusefs.Node, data bool) {
	srv := f.srv.Load()
	if srv == nil {
		return
	}
	go func() {
		var err error
		if data {
			err = srv.InvalidateNodeData(n)
		} else {
			err = srv.InvalidateNodeAttr(n)
		}
		if err != nil && !errors.Is(err, fuse.ErrNotCached) {
			f.log.Debug("cannot invalidate kernel node", "data", data, "err", err)
		}
	}()
}

// writeRefused is the errno for starting a change (opening notes for
// writing, truncating them, an editor's file) that cannot be made now:
// EROFS in a read-only mount, or the errno of PBS refusing changes to the
// datastore (a maintenance mode, an S3 backend: Store.CheckWrite); nil
// otherwise. Refusing at the start matters because a shell ignores the
// error of the close that would save. The datastore checks again, under
// PBS's config lock, when the change is made.
func (f *FS) writeRefused(op string) error {
	if f.ro {
		return f.readOnlyErr()
	}
	return f.errno(op, f.store.CheckWrite())
}
