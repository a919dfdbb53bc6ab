package pxar

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// dirCache is the LRU of opened directories (dirState, keyed by goodbye
// end), bounded by their number and, when maxEntries > 0, by the children
// their listings hold together: the least recently used go first, but the
// newest listing stays whatever its size.
type dirCache struct {
	maxEntries int

	mu      sync.Mutex
	lru     *simplelru.LRU[uint64, *dirState]
	entries int // children of the cached listings
}

func newDirCache(size, maxEntries int) (*dirCache, error) {
	c := &dirCache{maxEntries: maxEntries}
	l, err := simplelru.NewLRU(size, func(_ uint64, st *dirState) { c.entries -= len(st.children) })
	if err != nil {
		return nil, err
	}
	c.lru = l
	return c, nil
}

// get returns a cached directory and marks it used.
func (c *dirCache) get(end uint64) (*dirState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(end)
}

// peek returns a cached directory without marking it used.
func (c *dirCache) peek(end uint64) (*dirState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Peek(end)
}

// add caches st (replacing what is cached under end) and evicts the least
// recently used beyond the bounds.
func (c *dirCache) add(end uint64, st *dirState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(end); ok {
		c.entries -= len(old.children) // Add replaces without the eviction callback
	}
	c.lru.Add(end, st)
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
