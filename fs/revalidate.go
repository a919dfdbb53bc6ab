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
// One stat per directory node the kernel holds, snapshot directories spread
// over several passes on large stores (snapshotBudget); the wait between
// passes grows with the time a pass takes (sweepCPUShare), so a huge store
// cannot make it a busy loop. What it does not see: a file changed in place
// without a rename (PBS never does that; an admin with an editor on the
// raw store might) shows after the TTL.

// DefaultRecheck is how often the revalidator looks for changes made by
// others, when Options.Recheck is 0.
const DefaultRecheck = 2 * time.Second

// sweepCPUShare bounds the revalidator's share of one core: the pause after
// a pass is at least this many times the pass's duration.
const sweepCPUShare = 20

// snapshotBudget is the share of the recheck interval a pass may spend on
// snapshot directories. Namespace, type and group directories — where
// snapshots appear and disappear — are checked on every pass; snapshot
// directories (a changed manifest: notes edited elsewhere, verify state,
// protection) are spread over as many passes as it takes to stay within
// the budget: on a 100,000-snapshot store each is checked every half
// minute or so. Their content is never stale meanwhile: notes,
// manifest.json and owner are read afresh at every open; only the sizes
// and times `ls -l` shows can be, for that long.
const snapshotBudget = 0.025

// sweep is the state of the revalidator between passes.
type sweep struct {
	pass   uint64 // passes made
	stride uint64 // a snapshot directory is checked every stride passes
}

// Revalidate runs the revalidator until ctx is done. It needs the server
// (SetServer) to invalidate anything; when Recheck is negative it only
// follows PBS's datastore.cfg (followPBS).
func (f *FS) Revalidate(ctx context.Context) {
	if f.recheck <= 0 {
		f.followPBS(ctx)
		return
	}
	sw := sweep{stride: 1}
	wait := f.recheck
	woken := make(chan struct{}, 1)
	f.store.SetOnActivate(func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	})
	defer f.store.SetOnActivate(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-woken:
		}
		if !f.recheckPBS() {
			wait = f.recheck
			continue
		}
		start := time.Now()
		p := f.sweepPass(ctx, sw.pass, sw.stride)
		took := time.Since(start)
		sw.pass++
		// Spread the snapshot directories so that checking them takes
		// at most snapshotBudget of the interval, at the cost per stat
		// this pass showed.
		if p.stats > 0 && p.snapshots > 0 {
			perStat := float64(took) / float64(p.stats)
			need := perStat * float64(p.snapshots) / (snapshotBudget * float64(f.recheck))
			sw.stride = max(1, uint64(need+0.999))
		}
		wait = max(f.recheck, sweepCPUShare*took)
		f.log.Debug("revalidated", "directories", p.stats, "snapshot directories", p.snapshots,
			"took", took, "next in", wait, "snapshot stride", sw.stride)
	}
}

// recheckPBS applies what PBS's datastore.cfg says now (neighbour.go in
// the datastore package) and reports whether the datastore should be swept:
// not while PBS has taken it away, and not while pbsfs is idle — the sweep
// would open the datastore and register with PBS, which must see pbsfs
// holding nothing while idle. What PBS changed meanwhile is looked at as soon
// as the datastore is used again (SetOnActivate wakes the loop). When the
// datastore becomes unavailable or available again, everything the kernel
// caches is dropped.
func (f *FS) recheckPBS() bool {
	changed, err := f.store.Recheck()
	if err != nil {
		f.log.Warn("cannot re-read PBS's datastore configuration", "err", err)
	}
	if changed {
		f.invalidateAll(f.srv.Load(), f.root)
	}
	return f.store.Blocked() == nil && f.store.Active()
}

// followPBS is the revalidator without sweeps (Recheck < 0): PBS's
// datastore.cfg is still followed, every DefaultRecheck, so that a
// maintenance mode takes effect (and the datastore is let go) while pbsfs
// is busy too, not only at its next change or after an idle second.
func (f *FS) followPBS(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(DefaultRecheck):
		}
		f.recheckPBS()
	}
}

// invalidateAll drops what the kernel caches of d and everything below it.
func (f *FS) invalidateAll(srv *fusefs.Server, d dirNode) {
	if srv == nil {
		return
	}
	f.notify(srv.InvalidateNodeData(d), "directory", d, "")
	for _, k := range d.dir().kids.list() {
		if c, ok := k.n.(dirNode); ok {
			f.invalidateAll(srv, c)
			continue
		}
		f.notify(srv.InvalidateNodeData(k.n), "file", k.n, "")
	}
}

// passStats counts what a pass did.
type passStats struct {
	stats     int // directories stat'ed
	snapshots int // snapshot directories held by the kernel (stat'ed or not)
}

// Sweep makes one full revalidation pass now and returns the number of
// directories it looked at.
func (f *FS) Sweep(ctx context.Context) int {
	return f.sweepPass(ctx, 0, 1).stats
}

// sweepPass makes pass number pass, checking the snapshot directories whose
// inode number is pass modulo stride.
func (f *FS) sweepPass(ctx context.Context, pass, stride uint64) passStats {
	srv := f.srv.Load() // nil: nothing to invalidate (benchmarks); the stats are made all the same
	p := passStats{stats: 1}
	st, err := f.store.ChangeStamp("")
	if errors.Is(err, datastore.ErrUnavailable) {
		return p // went idle or unavailable since recheckPBS
	}
	if err != nil {
		f.log.Warn("revalidate: cannot stat the datastore root", "err", err)
		return p
	}
	if f.root.noteStamp(st) {
		f.invalidateChanged(srv, f.root)
	}
	f.sweepDir(ctx, srv, f.root, pass, stride, &p)
	return p
}

// sweepDir checks the cached child directories of d, and theirs.
func (f *FS) sweepDir(ctx context.Context, srv *fusefs.Server, d dirNode, pass, stride uint64, p *passStats) {
	for _, k := range d.dir().kids.list() {
		c, ok := k.n.(dirNode)
		if !ok {
			continue // files: see invalidateChanged
		}
		if ctx.Err() != nil {
			return
		}
		if _, isSnap := c.(*snapDir); isSnap {
			p.snapshots++
			if stride > 1 && (c.base().ino+pass)%stride != 0 {
				continue
			}
		}
		p.stats++
		st, err := f.store.ChangeStamp(c.base().rel)
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			d.dir().kids.remove(k.name, c.base())
			f.dropScratchBelow(c.base().rel)
			if srv != nil {
				f.notify(srv.InvalidateEntry(d, k.name), "entry", d, k.name)
				f.notify(srv.InvalidateNodeData(d), "listing", d, "")
			}
			continue
		case err != nil:
			f.log.Debug("revalidate: cannot stat", "path", c.base().display(), "err", err)
			continue
		}
		if c.dir().noteStamp(st) {
			f.invalidateChanged(srv, c)
			if _, ok := c.(*nsListDir); ok && srv != nil {
				// The namespace lists "ns" only while it has child
				// namespaces: its listing depends on this one.
				f.notify(srv.InvalidateNodeData(d), "listing", d, "")
			}
		}
		f.sweepDir(ctx, srv, c, pass, stride, p)
	}
}

// invalidateChanged drops what the kernel caches of directory d, whose
// stamp changed, and of the files shown in it.
func (f *FS) invalidateChanged(srv *fusefs.Server, d dirNode) {
	if srv != nil {
		f.notify(srv.InvalidateNodeData(d), "directory", d, "")
		for _, k := range d.dir().kids.list() {
			if _, isDir := k.n.(dirNode); !isDir {
				f.notify(srv.InvalidateNodeData(k.n), "file", k.n, "")
			}
		}
	}
	if sd, ok := d.(*snapDir); ok {
		sd.dropPrimed()
		sd.meta.forget()
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
	digest := st.ID().Digest()
	old := d.seen.Swap(digest)
	return old != 0 && old != digest
}
