package datastore

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/semaphore"

	"pbsfs/manifest"
)

// Memory bounds that hold for the whole store (and so for the process,
// which opens one), not per file or per request.

// DefaultDecodeBudget is Options.DecodeBudget when zero (it grows with a
// larger chunk or blob cache): the default chunk cache, its buffer pool and
// the blob cache (112 MiB), and room beside them for two decodes of the
// largest blob PBS writes, or dozens of chunk decodes (a 4 MiB chunk takes
// a little over 8 MiB while it is read and decoded).
const DefaultDecodeBudget = 384 << 20

// DefaultBlobCache is ArchiveOptions.BlobCacheBytes when zero. Blob
// archives are configuration files and logs, kilobytes each.
const DefaultBlobCache = 32 << 20

// minBudgeted is the smallest allocation the budget counts: smaller ones
// are negligible, and the runtime may batch tiny objects so that their
// cleanups never run.
const minBudgeted = 1 << 10

// memBudget bounds the memory a store reads and decodes blobs into: every
// buffer for a chunk file, a decrypted payload or a decoded manifest, blob
// archive or chunk is taken from it when allocated, and given back only
// when the garbage collector has freed it (runtime.AddCleanup). So the
// bound covers what decodes use, what the chunk and blob caches and the
// buffer pool keep, and what is garbage not yet collected, alike: a flood
// of crafted frames that each may decode to 128 MiB cannot pile up more
// than the budget, in use or as garbage. A buffer that does not fit fails
// with manifest.ErrNoMemory (ErrIO for the reader) without being allocated,
// after one garbage collection to return what is already unreachable (and
// its pages to the kernel).
type memBudget struct {
	limit int64
	sem   *semaphore.Weighted
	gcMu  sync.Mutex // one collection at a time when the budget is spent
}

func newMemBudget(limit int64) *memBudget {
	return &memBudget{limit: limit, sem: semaphore.NewWeighted(limit)}
}

// alloc returns a new buffer of length 0 and capacity n, counted against
// the budget until it is collected.
func (b *memBudget) alloc(n int) ([]byte, error) {
	if n < minBudgeted {
		return make([]byte, 0, n), nil
	}
	if err := b.take(int64(n)); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, n)
	runtime.AddCleanup(unsafe.SliceData(buf), b.sem.Release, int64(n))
	return buf, nil
}

// take reserves n bytes. When they are not free, it runs the garbage
// collector and returns free pages to the kernel once (shared by all who wait at that moment) and gives the
// cleanups it queued a moment to run before refusing.
func (b *memBudget) take(n int64) error {
	if b.sem.TryAcquire(n) {
		return nil
	}
	if n > b.limit {
		return fmt.Errorf("%w: %d bytes, more than the whole decode budget of %d", manifest.ErrNoMemory, n, b.limit)
	}
	b.gcMu.Lock()
	defer b.gcMu.Unlock()
	if b.sem.TryAcquire(n) { // someone else's collection freed enough
		return nil
	}
	// A collection that also hands the freed pages back to the kernel:
	// under this pressure the resident size should follow the budget too.
	debug.FreeOSMemory()
	for range 50 {
		if b.sem.TryAcquire(n) {
			return nil
		}
		time.Sleep(time.Millisecond) // cleanups run in their own goroutine after the collection
	}
	return fmt.Errorf("%w: %d bytes wanted, decode budget of %d in use", manifest.ErrNoMemory, n, b.limit)
}

// budgetHeap is manifest.Buffers for decoded data that outlives its decode
// (manifest text while parsed, blob archives): new memory from the budget,
// left to the garbage collector.
type budgetHeap struct{ b *memBudget }

func (h budgetHeap) Get(n int) ([]byte, error) { return h.b.alloc(n) }
func (budgetHeap) Put([]byte)                  {}

// blobCache keeps decoded blob archives by file identity, bounded in bytes
// (least recently used first out). A blob larger than the whole bound is
// decoded for each use and not kept.
type blobCache struct {
	limit int64

	mu    sync.Mutex
	lru   *simplelru.LRU[FileID, []byte]
	bytes int64
}

func newBlobCache(limit int64) *blobCache {
	c := &blobCache{limit: limit}
	// The entry count is bounded by the bytes; the LRU's own bound only
	// has to be large enough never to matter.
	c.lru, _ = simplelru.NewLRU(1<<20, func(_ FileID, v []byte) { c.bytes -= int64(len(v)) })
	return c
}

func (c *blobCache) get(id FileID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(id)
}

func (c *blobCache) add(id FileID, data []byte) {
	if int64(len(data)) > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(id); ok {
		c.bytes -= int64(len(old))
	}
	c.lru.Add(id, data)
	c.bytes += int64(len(data))
	for c.bytes > c.limit {
		c.lru.RemoveOldest()
	}
}

// stats returns the number of blobs kept and their bytes.
func (c *blobCache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}
