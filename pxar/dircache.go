package pxar

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DirCache is a cache of decoded directories that several Archives share
// (Options.DirCache), so that the memory of all of them is bounded
// together: by the number of directories and, when entries > 0, by the
// children their listings hold. The least recently used directory of any
// archive goes first; the newest listing stays whatever its size.
// Directories of an Archive no longer used stay until they are the least
// recently used. A DirCache is safe for concurrent use.
type DirCache struct {
	c    *dirCache
	next atomic.Uint64 // the last archive id handed out
}

// NewDirCache makes a cache of at most dirs directories and, when entries
// > 0, at most that many children in their listings together.
func NewDirCache(dirs, entries int) (*DirCache, error) {
	if dirs <= 0 {
		return nil, fmt.Errorf("pxar: directory cache of %d directories", dirs)
	}
	c, err := newDirCache(dirs, entries)
	if err != nil {
		return nil, fmt.Errorf("pxar: directory cache: %w", err)
	}
	return &DirCache{c: c}, nil
}

// Stats returns the number of cached directories and the children their
// listings hold.
func (d *DirCache) Stats() (dirs, entries int) { return d.c.stats() }

// archiveID returns a key prefix no other Archive of this cache has.
func (d *DirCache) archiveID() uint64 { return d.next.Add(1) }

// dirKey is a cached directory's key: the Archive it belongs to (0 in an
// Archive's own cache) and the end of its goodbye table.
type dirKey struct {
	archive uint64
	end     uint64
}

// dirCache is the LRU of opened directories (dirState, keyed by archive and
// goodbye end), bounded by their number and, when maxEntries > 0, by the
// children their listings hold together: the least recently used go first,
// but the newest listing stays whatever its size.
type dirCache struct {
	size, maxEntries int

	mu      sync.Mutex
	lru     *simplelru.LRU[dirKey, *dirState]
	entries int // children of the cached listings
}

func newDirCache(size, maxEntries int) (*dirCache, error) {
	c := &dirCache{size: size, maxEntries: maxEntries}
	l, err := simplelru.NewLRU(size, func(_ dirKey, st *dirState) { c.entries -= len(st.children) })
	if err != nil {
		return nil, err
	}
	c.lru = l
	return c, nil
}

// get returns a cached directory and marks it used.
func (c *dirCache) get(k dirKey) (*dirState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(k)
}

// peek returns a cached directory without marking it used.
func (c *dirCache) peek(k dirKey) (*dirState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Peek(k)
}

// add caches st (replacing what is cached under k) and evicts the least
// recently used beyond the bounds.
func (c *dirCache) add(k dirKey, st *dirState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(k); ok {
		c.entries -= len(old.children) // Add replaces without the eviction callback
	}
	c.lru.Add(k, st)
	c.entries += len(st.children)
	for c.maxEntries > 0 && c.entries > c.maxEntries && c.lru.Len() > 1 {
		c.lru.RemoveOldest()
	}
}

// stats returns the number of cached directories and the children their
// listings hold.
func (c *dirCache) stats() (dirs, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.entries
}

// archiveStats returns the number of cached directories of one archive
// and the children their listings hold.
func (c *dirCache) archiveStats(archive uint64) (dirs, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.lru.Keys() {
		if k.archive == archive {
			st, _ := c.lru.Peek(k)
			dirs, entries = dirs+1, entries+len(st.children)
		}
	}
	return dirs, entries
}
