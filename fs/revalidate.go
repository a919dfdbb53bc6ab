package fs

import (
	"context"
	"errors"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// The kernel caches what pbsfs tells it — directory entries, attributes,
// directory listings (openDir) — for the TTL, which is long (DefaultTTL) so
// that a repeated `ls -lR` or `find` is answered from the kernel's caches
// instead of one FUSE round trip per entry. pbsfs invalidates those caches
// itself after its own changes. For the changes PBS makes behind its back
// (a backup finishing, prune, notes edited in the web UI, verify results,
// protection) the revalidator below looks at every directory the kernel
// holds, every Recheck interval, and invalidates what changed:
//
//   - a directory that is gone (prune, forget): its entry in the parent;
//   - a directory whose stamp changed (an entry was added, removed or
//     replaced in it — PBS writes every file by rename, so a new manifest or
//     group notes changes the directory's mtime): its attributes, its cached
//     listing, and the attributes and pages of the files pbsfs shows in it
//     (notes, manifest.json, owner, archives), whose content derives from
//     the files in it.
//
// One stat per directory node the kernel holds; the wait between passes
// grows with the time a pass takes (sweepCPUShare), so a huge store cannot
// make it a busy loop. What it does not see: a file changed in place
// without a rename (PBS never does that; an admin with an editor on the
// raw store might) shows after the TTL.

// DefaultRecheck is how often the revalidator looks for changes made by
// others, when Options.Recheck is 0.
const DefaultRecheck = 2 * time.Second

// sweepCPUShare bounds the revalidator's share of one core: the pause after
// a pass is at least this many times the pass's duration.
const sweepCPUShare = 20

// Revalidate runs the revalidator until ctx is done. It needs the server
// (SetServer) to invalidate anything and does nothing when Recheck is
// negative.
func (f *FS) Revalidate(ctx context.Context) {
	if f.recheck <= 0 {
		return
	}
	wait := f.recheck
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		start := time.Now()
		n := f.Sweep(ctx)
		took := time.Since(start)
		wait = max(f.recheck, sweepCPUShare*took)
		f.log.Debug("revalidated", "directories", n, "took", took, "next in", wait)
	}
}

// Sweep makes one revalidation pass now and returns the number of
// directories it looked at.
func (f *FS) Sweep(ctx context.Context) int {
	srv := f.srv.Load()
	if srv == nil {
		return 0
	}
	st, err := f.root.stat()
	if err != nil {
		f.log.Warn("revalidate: cannot stat the datastore root", "err", err)
		return 1
	}
	if f.root.noteStamp(st) {
		f.invalidateChanged(srv, f.root)
	}
	return 1 + f.sweepDir(ctx, srv, f.root)
}

// sweepDir checks the cached child directories of d, and theirs.
func (f *FS) sweepDir(ctx context.Context, srv *fusefs.Server, d dirNode) int {
	n := 0
	for _, k := range d.dir().kids.list() {
		c, ok := k.n.(dirNode)
		if !ok {
			continue // files: see invalidateChanged
		}
		if ctx.Err() != nil {
			return n
		}
		n++
		st, err := c.stat()
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			d.dir().kids.remove(k.name, c.base())
			f.dropScratchBelow(c.base().rel)
			f.notify(srv.InvalidateEntry(d, k.name), "entry", d, k.name)
			f.notify(srv.InvalidateNodeData(d), "listing", d, "")
			continue
		case err != nil:
			f.log.Debug("revalidate: cannot stat", "path", c.base().display(), "err", err)
			continue
		}
		if c.dir().noteStamp(st) {
			f.invalidateChanged(srv, c)
		}
		n += f.sweepDir(ctx, srv, c)
	}
	return n
}

// invalidateChanged drops what the kernel caches of directory d, whose
// stamp changed, and of the files shown in it.
func (f *FS) invalidateChanged(srv *fusefs.Server, d dirNode) {
	f.notify(srv.InvalidateNodeData(d), "directory", d, "")
	for _, k := range d.dir().kids.list() {
		if _, isDir := k.n.(dirNode); !isDir {
			f.notify(srv.InvalidateNodeData(k.n), "file", k.n, "")
		}
	}
	if sd, ok := d.(*snapDir); ok {
		sd.dropPrimed()
	}
}

// notify logs a failed invalidation (ErrNotCached is not one: the kernel
// had already dropped it).
func (f *FS) notify(err error, what string, n node, name string) {
	if err != nil && !errors.Is(err, fuse.ErrNotCached) {
		f.log.Debug("revalidate: cannot invalidate", "what", what, "path", n.base().display(), "name", name, "err", err)
	}
}

// noteStamp records st as the directory's current stamp and reports whether
// it differs from the one recorded before (none recorded is no change: the
// kernel has nothing from before to invalidate).
func (d *dirBase) noteStamp(st datastore.Stamp) bool {
	old := d.seen.Swap(stampDigest(st))
	return old != 0 && old != stampDigest(st)
}

// stampDigest folds what a directory's attributes show into one non-zero
// number (FNV-1a over the fields).
func stampDigest(st datastore.Stamp) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, v := range []uint64{
		st.Dev, st.Ino, uint64(st.Size), uint64(st.Mode), uint64(st.UID), uint64(st.GID),
		uint64(st.Mtime.UnixNano()), uint64(st.Ctime.UnixNano()), st.Nlink,
	} {
		h = (h ^ v) * prime
	}
	if h == 0 {
		h = 1
	}
	return h
}
