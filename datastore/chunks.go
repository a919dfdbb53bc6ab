package datastore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sys/unix"

	"pbsfs/index"
	"pbsfs/manifest"
)

// maxChunkFile bounds how much of a chunk file is read: the largest blob
// DataBlob::encode makes, plus the encrypted header.
const maxChunkFile = manifest.MaxBlobSize + manifest.EncryptedHeaderSize

// errMissingChunk is the cause of a chunk that the index names but the
// chunk store does not hold (removed by a garbage collection that missed a
// reference, or lost).
var errMissingChunk = errors.New("chunk missing from the chunk store")

// InsertChunk stores data as a chunk the way PBS's insert_chunk does and
// returns its digest: encoded with zstd when that is not larger (and
// encrypted with cfg when cfg is not nil), written to
// .chunks/<4 hex>/<64 hex digest> through a temp file and rename, the prefix
// directory created when missing. A chunk already stored under the digest
// with the same encoded length (or any length, for encrypted chunks) is
// kept; a zero-length file is replaced, and for unencrypted chunks a larger
// stored file is replaced by the smaller encoding. A writer for demos and
// tests: PBS itself receives chunks through its backup protocol.
func (s *Store) InsertChunk(data []byte, cfg *manifest.CryptConfig) ([32]byte, error) {
	const op = "insert chunk"
	digest := manifest.ChunkDigest(data, cfg)
	rel := index.ChunkPath(digest)
	if s.readOnly {
		return digest, s.refuse(op, s.abs(rel))
	}
	var raw []byte
	var err error
	if cfg != nil {
		raw, err = cfg.EncodeBlob(data, true)
	} else {
		raw, err = manifest.EncodeBlob(data, true)
	}
	if err != nil {
		return digest, wrap(op, s.abs(rel), nil, err)
	}
	dir, name := path.Split(rel)
	dir = path.Clean(dir)
	st, err := s.statRel(rel)
	switch {
	case err == nil && !st.IsRegular():
		return digest, wrap(op, s.abs(rel), ErrCorrupt, errNotRegular)
	case err == nil && st.Size == int64(len(raw)):
		return digest, nil // duplicate
	case err == nil && st.Size > 0 && (cfg != nil || st.Size < int64(len(raw))):
		return digest, nil // keep what is there (PBS's rules for differing lengths)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return digest, wrap(op, s.abs(rel), nil, err)
	}
	if err := s.mkdirRel(dir, 0o750); err != nil {
		return digest, wrap(op, s.abs(dir), nil, err)
	}
	own := fileOwner{uint32(os.Getuid()), uint32(os.Getgid()), 0o644}
	if _, err := s.replaceFile(dir, name, raw, own); err != nil {
		return digest, wrap(op, s.abs(rel), nil, err)
	}
	return digest, nil
}

// mkdirRel creates the directory rel (one level) below the root unless it
// exists.
func (s *Store) mkdirRel(rel string, mode uint32) error {
	parent, name := path.Split(rel)
	d, err := s.openRel(path.Clean("./"+parent), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Mkdirat(int(d.Fd()), name, mode); err != nil && err != unix.EEXIST {
		return &os.PathError{Op: "mkdir", Path: s.abs(rel), Err: err}
	}
	return nil
}

// loadChunk reads the chunk with the given digest and verifies it the way
// PBS's DataBlob::load_from_reader and decode(config, digest) do: CRC,
// decryption (tag) and decompression, then the digest of the plain data —
// SHA-256, or SHA-256(data ‖ id_key) for encrypted chunks. Every failure is
// ErrCorrupt naming the chunk file, except an encrypted chunk without a key
// (ErrEncrypted) and I/O errors.
func (s *Store) loadChunk(digest [32]byte, cfg *manifest.CryptConfig) (*chunk, error) {
	const op = "read chunk"
	rel := index.ChunkPath(digest)
	pool := s.arch.pool
	raw, err := s.back.readChunk(digest, maxChunkFile, pool)
	if (err == nil && len(raw) == 0) || (err != nil && classify(err) == ErrNotFound && !errors.Is(err, errLoop)) {
		if s.s3Backed(rel) { // PBS's local cache of an S3 datastore: an evicted chunk is empty or missing
			pool.Put(raw)
			return nil, wrap(op, s.abs(rel), ErrIO, errNotCached)
		}
	}
	if err != nil {
		switch kind := classify(err); {
		case errors.Is(err, errLoop):
			return nil, wrap(op, s.abs(rel), ErrCorrupt, errors.New("is a symlink; not followed"))
		case kind == ErrNotFound:
			return nil, wrap(op, s.abs(rel), ErrCorrupt, errMissingChunk)
		default:
			return nil, wrap(op, s.abs(rel), nil, err)
		}
	}
	c, err := s.decodeChunk(op, rel, digest, raw, cfg)
	if errors.Is(err, ErrCorrupt) {
		s.back.badChunk(digest)
	}
	return c, err
}

// decodeChunk verifies and decodes the raw chunk file of digest (read from
// rel), whose buffer belongs to the pool.
func (s *Store) decodeChunk(op, rel string, digest [32]byte, raw []byte, cfg *manifest.CryptConfig) (*chunk, error) {
	pool := s.arch.pool
	b, err := manifest.ParseBlob(raw)
	if err != nil {
		pool.Put(raw)
		return nil, wrap(op, s.abs(rel), ErrCorrupt, err)
	}
	if b.Encrypted() && cfg == nil {
		pool.Put(raw)
		return nil, wrap(op, s.abs(rel), ErrEncrypted, manifest.ErrEncrypted)
	}
	data, buf, err := b.DecodeInto(cfg, pool)
	if err != nil {
		pool.Put(raw)
		return nil, wrap(op, s.abs(rel), decodeErrKind(err), err)
	}
	if buf == nil {
		buf = raw // data is the payload of the file
	} else {
		pool.Put(raw)
	}
	var keyed *manifest.CryptConfig
	if b.Encrypted() {
		keyed = cfg
	}
	if got := manifest.ChunkDigest(data, keyed); got != digest {
		pool.Put(buf)
		return nil, wrap(op, s.abs(rel), ErrCorrupt,
			fmt.Errorf("%w (decoded %d bytes hash to %x)", manifest.ErrDigest, len(data), got))
	}
	return newChunk(data, buf, b.Encrypted(), pool), nil
}

// chunkCache is a least-recently-used cache of decoded chunks, bounded by
// the bytes of chunk data it holds, with one loader per chunk at a time
// (concurrent readers of a chunk being loaded wait for that load instead of
// decoding it again). Chunks are content-addressed: a digest always names
// the same data, so entries never go stale. The cache holds a reference to
// each chunk it keeps and releases it on eviction.
type chunkCache struct {
	limit int64

	mu     sync.Mutex
	lru    *simplelru.LRU[[32]byte, *chunk]
	size   int64
	flight map[[32]byte]*chunkLoad
}

type chunkLoad struct {
	done    chan struct{}
	waiters int32 // readers waiting for the load, each owed a reference
	c       *chunk
	err     error
}

// newChunkCache makes a cache holding at most limit bytes of chunk data;
// limit <= 0 disables caching (every read decodes).
func newChunkCache(limit int64) *chunkCache {
	c := &chunkCache{limit: limit, flight: map[[32]byte]*chunkLoad{}}
	// simplelru bounds the entry count; the byte bound is kept here. The
	// count only has to be out of the way: a chunk is at least one byte.
	n := 1 << 20
	if limit > 0 && limit < int64(n) {
		n = int(limit)
	}
	c.lru, _ = simplelru.NewLRU(n, func(_ [32]byte, v *chunk) {
		c.size -= int64(len(v.data))
		v.release()
	})
	return c
}

// has reports whether the chunk is cached or being loaded, without
// touching its recency.
func (c *chunkCache) has(d [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, loading := c.flight[d]
	return loading || c.lru.Contains(d)
}

// load returns the chunk from the cache or from load, which runs at most
// once at a time per digest and returns a chunk with one reference. The
// caller gets a reference of its own and releases it when done.
func (c *chunkCache) load(d [32]byte, load func() (*chunk, error)) (*chunk, error) {
	c.mu.Lock()
	if v, ok := c.lru.Get(d); ok {
		v.acquire()
		c.mu.Unlock()
		return v, nil
	}
	if l, ok := c.flight[d]; ok {
		l.waiters++
		c.mu.Unlock()
		<-l.done
		return l.c, l.err
	}
	l := &chunkLoad{done: make(chan struct{})}
	c.flight[d] = l
	c.mu.Unlock()

	l.c, l.err = load()

	c.mu.Lock()
	delete(c.flight, d)
	if l.err == nil {
		l.c.refs.Add(l.waiters)
		c.addLocked(d, l.c)
	}
	c.mu.Unlock()
	close(l.done)
	return l.c, l.err
}

// addLocked keeps v, taking a reference, unless it is larger than the
// whole cache.
func (c *chunkCache) addLocked(d [32]byte, v *chunk) {
	n := int64(len(v.data))
	if n > c.limit || c.lru.Contains(d) {
		return
	}
	v.acquire()
	c.lru.Add(d, v)
	c.size += n
	for c.size > c.limit {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
	}
}

// stats returns the number of cached chunks and their bytes.
func (c *chunkCache) stats() (entries int, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}

// BuildFixedIndex stores data as fixed-size chunks of chunkSize bytes (a
// power of two; the last chunk may be short), encrypted with cfg when it is
// not nil, and returns the .fidx file content and its manifest entry
// (Filename name, crypt-mode "encrypt" or "none", csum and size as PBS
// writes them). A writer for demos and tests.
func (s *Store) BuildFixedIndex(name string, data []byte, chunkSize int, cfg *manifest.CryptConfig) (manifest.FileInfo, []byte, error) {
	if chunkSize <= 0 || chunkSize&(chunkSize-1) != 0 {
		return manifest.FileInfo{}, nil, wrap("build index", name, ErrInvalid, fmt.Errorf("chunk size %d is not a power of two", chunkSize))
	}
	fx := &index.Fixed{Ctime: 1717596121, Size: uint64(len(data)), ChunkSize: uint64(chunkSize)}
	for off := 0; off < len(data); off += chunkSize {
		d, err := s.InsertChunk(data[off:min(off+chunkSize, len(data))], cfg)
		if err != nil {
			return manifest.FileInfo{}, nil, err
		}
		fx.Digests = append(fx.Digests, d)
	}
	csum := fx.ComputeCsum()
	return indexEntry(name, csum, fx.Size, cfg), fx.Encode(), nil
}

// BuildDynamicIndex stores each part as one chunk (encrypted with cfg when
// it is not nil) and returns the .didx file content of their concatenation
// and its manifest entry. Parts must not be empty. A writer for demos and
// tests.
func (s *Store) BuildDynamicIndex(name string, parts [][]byte, cfg *manifest.CryptConfig) (manifest.FileInfo, []byte, error) {
	dx := &index.Dynamic{Ctime: 1717596121}
	var end uint64
	for i, p := range parts {
		if len(p) == 0 {
			return manifest.FileInfo{}, nil, wrap("build index", name, ErrInvalid, fmt.Errorf("part %d is empty", i))
		}
		d, err := s.InsertChunk(p, cfg)
		if err != nil {
			return manifest.FileInfo{}, nil, err
		}
		end += uint64(len(p))
		dx.Entries = append(dx.Entries, index.DynamicEntry{End: end, Digest: d})
	}
	csum, size := dx.ComputeCsum()
	return indexEntry(name, csum, size, cfg), dx.Encode(), nil
}

// BuildBlob encodes data as a .blob archive (zstd when not larger;
// encrypted with cfg when it is not nil) and returns the file content and
// its manifest entry (size and csum of the raw file). A writer for demos
// and tests.
func BuildBlob(name string, data []byte, cfg *manifest.CryptConfig) (manifest.FileInfo, []byte, error) {
	var raw []byte
	var err error
	if cfg != nil {
		raw, err = cfg.EncodeBlob(data, true)
	} else {
		raw, err = manifest.EncodeBlob(data, true)
	}
	if err != nil {
		return manifest.FileInfo{}, nil, wrap("build blob", name, nil, err)
	}
	return indexEntry(name, sha256.Sum256(raw), uint64(len(raw)), cfg), raw, nil
}

func indexEntry(name string, csum [32]byte, size uint64, cfg *manifest.CryptConfig) manifest.FileInfo {
	mode := manifest.CryptNone
	if cfg != nil {
		mode = manifest.CryptEncrypt
	}
	return manifest.FileInfo{Filename: name, CryptMode: mode, Csum: hex.EncodeToString(csum[:]), Size: size}
}

// decodeErrKind is the kind of a failed decode: ErrCorrupt, unless the
// decode budget was spent (a transient ErrIO: the data may be fine).
func decodeErrKind(err error) error {
	if errors.Is(err, manifest.ErrNoMemory) {
		return ErrIO
	}
	return ErrCorrupt
}
