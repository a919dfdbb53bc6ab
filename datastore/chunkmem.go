package datastore

import (
	"sync"
	"sync/atomic"
)

// Chunk memory. A sequential read of a disk image decodes a 4 MiB chunk
// every few milliseconds; allocating each one fresh costs more than the
// FUSE transfer of it (the runtime zeroes every large allocation, and the
// memory the garbage collector returns to the kernel faults back in). So
// the memory of chunks the cache drops goes to a small pool that the next
// chunk loads take their file and output buffers from. A chunk's memory can
// only be reused once nothing reads it, hence the reference count: the
// cache holds one reference, and each reader one while it copies out.

// bufPool keeps a bounded number of bytes of freed chunk buffers; it
// implements manifest.Buffers. Get takes the smallest free buffer that fits
// without wasting more than a quarter, else allocates; Put keeps a buffer,
// dropping the oldest kept ones to stay within the limit.
type bufPool struct {
	limit  int64
	budget *memBudget // where new buffers come from

	mu    sync.Mutex
	free  [][]byte // oldest first
	bytes int64    // capacity held in free
}

// poolBytes is how much freed chunk memory a store keeps for reuse: enough
// for the buffers a few concurrent chunk loads need (the file and the
// decoded output of each), a quarter of a large chunk cache.
func poolBytes(cacheLimit int64) int64 {
	return max(8<<20, cacheLimit/4)
}

func newBufPool(limit int64, budget *memBudget) *bufPool {
	return &bufPool{limit: limit, budget: budget}
}

// Get returns a buffer of length 0 and capacity at least n: a kept one, or
// a new one from the budget.
func (p *bufPool) Get(n int) ([]byte, error) {
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		if c := cap(b); c >= n && c-n <= n/4+4096 && (best < 0 || c < cap(p.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		p.free = append(p.free[:best], p.free[best+1:]...)
		p.bytes -= int64(cap(b))
		p.mu.Unlock()
		return b[:0], nil
	}
	p.mu.Unlock()
	return p.budget.alloc(n)
}

// Put takes back a buffer nothing uses any more.
func (p *bufPool) Put(b []byte) {
	c := int64(cap(b))
	if c == 0 || c > p.limit {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.bytes+c > p.limit {
		p.bytes -= int64(cap(p.free[0]))
		p.free[0] = nil
		p.free = p.free[1:]
	}
	p.free = append(p.free, b[:0])
	p.bytes += c
}

// held returns the number of free buffers and their capacity.
func (p *bufPool) held() (n int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free), p.bytes
}

// chunk is a decoded, verified chunk, shared by the cache and its readers.
// Whoever gets one from chunkCache.load or Store.loadChunk holds a
// reference and calls release when done with data.
type chunk struct {
	data      []byte // plain data; never modified
	encrypted bool   // stored encrypted

	buf  []byte   // pool memory holding data; nil = garbage-collected memory
	pool *bufPool // where buf goes when the last reference is released
	refs atomic.Int32
}

// newChunk makes a chunk with one reference, its creator's.
func newChunk(data, buf []byte, encrypted bool, pool *bufPool) *chunk {
	c := &chunk{data: data, encrypted: encrypted, buf: buf, pool: pool}
	c.refs.Store(1)
	return c
}

// acquire adds a reference.
func (c *chunk) acquire() { c.refs.Add(1) }

// release drops a reference; the last one gives the memory back to the
// pool, after which data must not be used.
func (c *chunk) release() {
	switch n := c.refs.Add(-1); {
	case n == 0 && c.buf != nil && c.pool != nil:
		c.pool.Put(c.buf)
	case n < 0:
		panic("datastore: chunk released more often than acquired")
	}
}
