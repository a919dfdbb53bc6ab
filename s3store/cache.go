package s3store

import (
	"container/list"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// cacheEntry is a cached object: its bytes, identity and when the bucket
// last confirmed it (metadata objects only; chunks never change).
type cacheEntry struct {
	data    []byte
	info    Info
	checked time.Time
}

// memCache is an LRU of objects bounded by the bytes it holds. An object
// larger than the whole budget is not kept.
type memCache struct {
	mu    sync.Mutex
	limit int64
	size  int64
	order *list.List // of *memItem, most recent first
	items map[string]*list.Element
}

type memItem struct {
	key string
	e   cacheEntry
}

func newMemCache(limit int64) *memCache {
	return &memCache{limit: limit, order: list.New(), items: map[string]*list.Element{}}
}

func (c *memCache) get(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return cacheEntry{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*memItem).e, true
}

func (c *memCache) touch(key string, checked time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*memItem).e.checked = checked
	}
}

func (c *memCache) add(key string, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
	n := int64(len(e.data))
	if n > c.limit {
		return
	}
	c.items[key] = c.order.PushFront(&memItem{key: key, e: e})
	c.size += n
	for c.size > c.limit {
		last := c.order.Back()
		c.removeLocked(last.Value.(*memItem).key)
	}
}

func (c *memCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
}

func (c *memCache) removeLocked(key string) {
	if el, ok := c.items[key]; ok {
		c.size -= int64(len(el.Value.(*memItem).e.data))
		c.order.Remove(el)
		delete(c.items, key)
	}
}

func (c *memCache) stats() (entries int, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.size
}

// diskCache keeps chunks in a directory, <dir>/<4 hex>/<64 hex>, at most
// limit bytes: the least recently used go first. Files are written to a
// temporary name and renamed, so a crash leaves no partial chunk under a
// chunk's name (and readers verify every chunk anyway). The directory is
// this process's own: its use order is rebuilt from the files' times at
// start.
type diskCache struct {
	dir   string
	limit int64

	mu    sync.Mutex
	size  int64
	order *list.List // of *diskItem, most recent first
	items map[[32]byte]*list.Element
}

type diskItem struct {
	digest [32]byte
	size   int64
}

func openDiskCache(dir string, limit int64) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &diskCache{dir: dir, limit: limit, order: list.New(), items: map[[32]byte]*list.Element{}}
	type found struct {
		digest [32]byte
		size   int64
		mtime  time.Time
	}
	var all []found
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		var dg [32]byte
		if h, herr := hex.DecodeString(e.Name()); herr != nil || len(h) != 32 {
			_ = os.Remove(p) // a temporary file a crash left behind
			return nil
		} else {
			copy(dg[:], h)
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		all = append(all, found{dg, fi.Size(), fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.After(all[j].mtime) })
	for _, f := range all {
		d.items[f.digest] = d.order.PushBack(&diskItem{f.digest, f.size})
		d.size += f.size
	}
	d.mu.Lock()
	d.evictLocked()
	d.mu.Unlock()
	return d, nil
}

func (d *diskCache) path(digest [32]byte) string {
	h := hex.EncodeToString(digest[:])
	return filepath.Join(d.dir, h[:4], h)
}

func (d *diskCache) get(digest [32]byte, limit int64) ([]byte, bool) {
	d.mu.Lock()
	el, ok := d.items[digest]
	if ok {
		d.order.MoveToFront(el)
	}
	d.mu.Unlock()
	if !ok {
		return nil, false
	}
	if limit > 0 && el.Value.(*diskItem).size > limit {
		return nil, false
	}
	data, err := os.ReadFile(d.path(digest))
	if err != nil {
		d.remove(digest)
		return nil, false
	}
	return data, true
}

func (d *diskCache) put(digest [32]byte, data []byte) {
	n := int64(len(data))
	if n > d.limit {
		return
	}
	p := d.path(digest)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		slog.Warn("s3 cache directory", "err", err)
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		slog.Warn("s3 cache directory", "err", err)
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		_ = os.Remove(tmp.Name())
		slog.Warn("s3 cache directory: chunk not kept", "err", firstErr(werr, cerr))
		return
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		_ = os.Remove(tmp.Name())
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.items[digest]; ok {
		d.size -= el.Value.(*diskItem).size
		d.order.Remove(el)
	}
	d.items[digest] = d.order.PushFront(&diskItem{digest, n})
	d.size += n
	d.evictLocked()
}

func (d *diskCache) evictLocked() {
	for d.size > d.limit {
		last := d.order.Back()
		it := last.Value.(*diskItem)
		d.order.Remove(last)
		delete(d.items, it.digest)
		d.size -= it.size
		_ = os.Remove(d.path(it.digest))
	}
}

func (d *diskCache) remove(digest [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.items[digest]; ok {
		d.size -= el.Value.(*diskItem).size
		d.order.Remove(el)
		delete(d.items, digest)
	}
	_ = os.Remove(d.path(digest))
}

func (d *diskCache) stats() (entries int, size int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items), d.size
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
