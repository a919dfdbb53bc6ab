package fs

import (
	"container/list"
	"errors"
	"slices"
	"sync"
	"time"

	"bazil.org/fuse"
)

// The cap on archive entries the kernel holds (fs/README.md, "pxar
// archives", Memory). The kernel keeps an inode for every entry it has
// looked up until memory pressure, and bazil a node for each inode, so
// without a cap a walk of a large archive costs memory per entry walked.
// pxarCap keeps the names looked up in each archive directory (the
// entry's own name string, which the child's node shares: 16 bytes a
// name) and the directories in an LRU (recency: a lookup or a listing in
// them); when the names of the whole mount pass the cap, the least
// recently used directories are evicted: the kernel is told to drop those
// entries (FUSE_NOTIFY_INVAL_ENTRY), after which it FORGETs the inodes
// nobody uses and bazil frees its nodes. A directory none of whose
// subdirectories is still in the LRU goes whole, by its own entry in its
// parent: one notification drops the names below it, and the kernel
// FORGETs them in batches (a FORGET read one at a time costs bazil a
// goroutine and a 132 KiB buffer each). Otherwise each name is dropped on
// its own, but for the subdirectories still in the LRU. Inode numbers
// derive from the archive and the entry (pxarTree.inoOf), so an entry
// looked up again has the number it had.
//
// Eviction runs in one goroutine at a time, started when the count passes
// the cap and ending below low water, never in a request: an invalidation
// waits for the directory's lock in the kernel, which the kernel may hold
// for the very request being answered.

// DefaultPxarCap is the number of looked-up archive entries a mount lets
// the kernel hold, when Options.PxarCap is 0 (~34 MB of bazil's and our
// nodes at ~225 bytes an entry). It holds a whole walk of an archive of
// 100,000 files in 5,000 directories (108,423 entries, the issue's
// benchmark tree), and keeps a walk of 1,000,000 entries under 200 MB
// (BENCHMARKS.md: 187 MiB with the bench's walker, 210 MiB with 200,000).
const DefaultPxarCap = 150_000

// pxarCap is the state of the cap; its zero value (limit 0) never evicts.
type pxarCap struct {
	fs    *FS
	limit int

	mu      sync.Mutex
	lru     list.List // of *pxarDir, most recently used first
	held    int       // names kept in the directories of lru
	running bool      // an eviction goroutine runs
	evicted int       // directories evicted (for tests and debug lines)
}

// touch records a lookup of name in d (none for a listing: "") and makes d
// the most recently used directory; past the cap it starts the eviction.
func (c *pxarCap) touch(d *pxarDir, name string) {
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.capElem == nil {
		d.capElem = c.lru.PushFront(d)
	} else {
		c.lru.MoveToFront(d.capElem)
	}
	if name != "" {
		d.capNames = append(d.capNames, name)
		c.held++
	}
	if c.held > c.limit && !c.running {
		c.running = true
		go c.evict()
	}
}

// forget stops counting d, which the kernel forgot (with its children).
func (c *pxarCap) forget(d *pxarDir) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(d)
}

func (c *pxarCap) removeLocked(d *pxarDir) []string {
	if d.capElem == nil {
		return nil
	}
	c.lru.Remove(d.capElem)
	names := d.capNames
	c.held -= len(names)
	d.capElem, d.capNames = nil, nil
	return names
}

// tracked reports whether d is in the LRU.
func (c *pxarCap) tracked(d *pxarDir) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return d.capElem != nil
}

// counts returns the names kept and the directories evicted so far.
func (c *pxarCap) counts() (held, evicted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held, c.evicted
}

// evict drops least recently used directories until the count is at low
// water (nine tenths of the cap), so that it does not run for every lookup
// past the cap.
func (c *pxarCap) evict() {
	low := c.limit - c.limit/10
	sent := 0 // invalidations since the last pause
	for {
		if sent >= invalidatePace {
			time.Sleep(time.Millisecond)
			sent = 0
		}
		c.mu.Lock()
		back := c.lru.Back()
		if c.held <= low || back == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		d := back.Value.(*pxarDir)
		names := c.removeLocked(d)
		c.evicted++
		c.mu.Unlock()
		c.fs.invalidatePxarNames(d, names)
		sent += len(names)
	}
}

// invalidatePace is how many entries eviction invalidates before it pauses
// for a millisecond. Each invalidation makes the kernel send a FORGET, and
// bazil reads every request into a buffer of its own (132 KiB) that lives
// until its goroutine has run (and then in a sync.Pool until the next
// collection but one): an unpaced burst of 20,000 FORGETs held up to
// 150 MB of them during a walk of 1,000,000 entries.
const invalidatePace = 256

// invalidatePxarNames tells the kernel to drop the entries names of d. A
// subdirectory still in the LRU (the kernel holds children of it, more
// recently used) keeps its entry: dropping it would take the subtree with
// it, and it is evicted on its own turn. Without such a subdirectory, d's
// own entry in its parent is dropped instead, and everything below it with
// it; the parent keeps counting d's name until its own turn.
func (f *FS) invalidatePxarNames(d *pxarDir, names []string) {
	srv := f.srv.Load()
	if srv == nil {
		return
	}
	held := func(name string) bool {
		k, ok := d.kids.peek(name)
		if !ok {
			return false
		}
		sub, ok := k.(*pxarDir)
		return ok && f.pxarCap.tracked(sub)
	}
	if d.parent != nil && !slices.ContainsFunc(names, held) {
		if srv.InvalidateEntry(d.parent, d.e.Name) == nil {
			return
		}
		// Not cached there (so neither is anything below it), or the
		// mount is ending: the names one by one find out which.
	}
	for _, name := range names {
		if held(name) {
			continue
		}
		err := srv.InvalidateEntry(d, name)
		if errors.Is(err, fuse.ErrNotCached) {
			continue
		}
		if err != nil {
			// The directory itself is gone from the kernel (its
			// children with it), or the mount is ending.
			f.log.Debug("cannot invalidate archive entry", "dir", d.display(), "name", name, "err", err)
			return
		}
	}
}
