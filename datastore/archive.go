package datastore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"pbsfs/index"
	"pbsfs/manifest"
	"pbsfs/pxar"
)

// DefaultChunkCache is the byte bound of a local store's decoded-chunk
// cache when ArchiveOptions.CacheBytes is zero: 8 chunks of the default
// 4 MiB size, room for the chunk being read, the readAheadChunks decoded
// ahead of it and the chunks random reads come back to. More does not
// help a walk of an archive (each chunk is decoded once, BENCHMARKS.md) and
// costs its memory besides a garbage collector's headroom as large.
const DefaultChunkCache = 32 << 20

// DefaultBucketChunkCache is that bound for a store read from a bucket
// (OpenS3), whose read-ahead of s3ReadAhead chunks needs room for one more.
const DefaultBucketChunkCache = 64 << 20

// maxIndexFile bounds how much of an index file is read (a .fidx of a
// 64 TiB image in 4 MiB chunks is 512 MiB).
const maxIndexFile = 1 << 30

// ClientLogName is the client log PBS stores beside the archives after the
// manifest is written, so it is not listed in the manifest.
const ClientLogName = "client.log.blob"

// ArchiveOptions configure access to the archives inside snapshots (the
// .blob, .fidx and .didx files a manifest lists).
type ArchiveOptions struct {
	// Enabled makes ListArchives list them; without it a snapshot has no
	// archives to show (the file system then shows only notes and
	// manifest.json).
	Enabled bool
	// Crypt is the key for archives with crypt-mode "encrypt"; nil leaves
	// them unreadable (ErrEncrypted). With a key, ManifestJSON also
	// reports whether the manifest's signature is valid.
	Crypt *manifest.CryptConfig
	// CacheBytes bounds the decoded-chunk cache; 0 = DefaultChunkCache,
	// negative = no cache.
	CacheBytes int64
	// BlobCacheBytes bounds the decoded blob archives kept for further
	// reads (by file identity, least recently used out); 0 =
	// DefaultBlobCache, negative = none kept.
	BlobCacheBytes int64
}

// archiveState is the store's archive configuration, its caches, and
// the read-ahead goroutines Close waits for.
type archiveState struct {
	opts  ArchiveOptions
	cache *chunkCache
	pool  *bufPool                        // memory of dropped chunks, for the next loads
	blobs *blobCache                      // decoded blob archives
	pxar  *lru.Cache[string, *openedPxar] // opened pxar archives (pxar.go)
	dirs  *pxar.DirCache                  // their decoded directories (pxar.go)

	mu      sync.Mutex
	closed  bool
	pending sync.WaitGroup
}

// goBackground runs fn in a goroutine unless the store is closing; close
// waits for all of them.
func (st *archiveState) goBackground(fn func()) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	st.pending.Go(fn)
	return true
}

// close stops new background work and waits for what runs.
func (st *archiveState) close() {
	st.mu.Lock()
	st.closed = true
	st.mu.Unlock()
	st.pending.Wait()
}

func newArchiveState(o ArchiveOptions, mem *memBudget) *archiveState {
	limit, blobLimit := o.cacheLimits()
	return &archiveState{opts: o, cache: newChunkCache(limit), pool: newBufPool(poolBytes(limit), mem), blobs: newBlobCache(blobLimit),
		pxar: newPxarCache(), dirs: newPxarDirCache()}
}

// cacheLimits returns the chunk and blob cache bounds with the defaults
// applied.
func (o ArchiveOptions) cacheLimits() (chunks, blobs int64) {
	chunks, blobs = o.CacheBytes, o.BlobCacheBytes
	if chunks == 0 {
		chunks = DefaultChunkCache
	}
	if blobs == 0 {
		blobs = DefaultBlobCache
	}
	return chunks, blobs
}

// ChunkCacheBytes is the bound of the decoded-chunk cache (0: no cache).
func (s *Store) ChunkCacheBytes() int64 { return max(s.arch.cache.limit, 0) }

// ArchivesEnabled reports whether archives are listed (ArchiveOptions.Enabled).
func (s *Store) ArchivesEnabled() bool { return s.arch.opts.Enabled }

// Crypt returns the encryption key configuration, nil without a key.
func (s *Store) Crypt() *manifest.CryptConfig { return s.arch.opts.Crypt }

// ChunkCacheStats returns the number of chunks in the decoded-chunk cache
// and the bytes they hold.
func (s *Store) ChunkCacheStats() (entries int, size int64) { return s.arch.cache.stats() }

// ArchiveKind is the kind of an archive file.
type ArchiveKind int

const (
	// BlobArchive: a .blob file, shown decoded.
	BlobArchive ArchiveKind = iota
	// FixedArchive: a .fidx (fixed-size chunks: disk images).
	FixedArchive
	// DynamicArchive: a .didx (variable-size chunks: catalogs, other
	// streams).
	DynamicArchive
	// PxarArchive: a pxar archive, shown as a directory (pxar.go): a v1
	// NAME.pxar.didx, or a split NAME.mpxar.didx with its payload stream
	// NAME.ppxar.didx (ArchiveInfo.Payload). Both show as NAME.pxar.
	PxarArchive
)

func (k ArchiveKind) String() string {
	switch k {
	case BlobArchive:
		return "blob"
	case FixedArchive:
		return "fixed index"
	case DynamicArchive:
		return "dynamic index"
	case PxarArchive:
		return "pxar archive"
	}
	return "unknown"
}

// ArchiveName maps an archive file name to the name its content is shown
// under (the file name without .blob, .fidx or .didx) and its kind. ok is
// false for other files, for the manifest itself and for names that are not
// safe file names. NAME.pxar.didx and NAME.mpxar.didx are PxarArchive
// NAME.pxar (the listing attaches a NAME.ppxar.didx to its NAME.mpxar.didx;
// alone it is a DynamicArchive NAME.ppxar).
func ArchiveName(file string) (name string, kind ArchiveKind, ok bool) {
	if file == ManifestName || !ValidSafeID(file) {
		return "", 0, false
	}
	if n, found := pxarName(file); found {
		return n, PxarArchive, true
	}
	for _, e := range [...]struct {
		ext  string
		kind ArchiveKind
	}{{".blob", BlobArchive}, {".fidx", FixedArchive}, {".didx", DynamicArchive}} {
		if n, found := strings.CutSuffix(file, e.ext); found && n != "" {
			return n, e.kind, true
		}
	}
	return "", 0, false
}

// ArchiveInfo describes an archive of a snapshot as its manifest lists it.
type ArchiveInfo struct {
	Name       string // shown name (File without its extension)
	File       string // file name in the snapshot directory
	Kind       ArchiveKind
	CryptMode  string // "none", "encrypt", "sign-only"; "" when not in the manifest
	Size       uint64 // manifest size: raw file bytes for blobs, content bytes for indexes
	Csum       string // manifest csum (hex); "" when not in the manifest
	InManifest bool   // false only for client.log.blob
	// Payload is, for a split PxarArchive (File NAME.mpxar.didx), the
	// manifest's entry of its payload stream NAME.ppxar.didx; nil if the
	// manifest lacks it (opening then fails with ErrCorrupt) and for every
	// other archive.
	Payload *ArchiveInfo
}

// Encrypted reports whether the manifest marks the archive encrypted.
func (a ArchiveInfo) Encrypted() bool { return a.CryptMode == manifest.CryptEncrypt }

// ListArchives returns the archives of a finished snapshot in manifest
// order: every manifest entry with an archive extension and a safe name,
// and client.log.blob when it exists. Two entries showing under the same
// name keep the first. It returns nothing (and no error) unless archives
// are enabled. The stamp is the manifest's.
func (s *Store) ListArchives(sn Snapshot) ([]ArchiveInfo, Stamp, error) {
	list, st, err := s.manifestArchives(sn)
	if err != nil || !s.arch.opts.Enabled {
		return nil, st, err
	}
	if log, ok := s.clientLog(sn, list); ok {
		list = append(list, log)
	}
	return list, st, nil
}

// manifestArchives returns the archives the manifest lists (see
// ListArchives), whether or not archives are enabled.
func (s *Store) manifestArchives(sn Snapshot) ([]ArchiveInfo, Stamp, error) {
	m, st, err := s.Manifest(sn)
	if err != nil {
		return nil, st, err
	}
	files := m.Files()
	out := make([]ArchiveInfo, 0, len(files)+1)
	for _, f := range files {
		name, kind, ok := ArchiveName(f.Filename)
		if !ok || slices.ContainsFunc(out, func(a ArchiveInfo) bool { return a.Name == name }) {
			s.log.Debug("manifest entry not shown as an archive", "snapshot", sn.Dir(), "file", f.Filename)
			continue
		}
		out = append(out, ArchiveInfo{Name: name, File: f.Filename, Kind: kind, CryptMode: f.CryptMode,
			Size: f.Size, Csum: f.Csum, InManifest: true})
	}
	return pairSplitArchives(out), st, nil
}

// clientLog returns the entry of client.log.blob if the snapshot has one
// and the manifest list does not already show something under its name.
func (s *Store) clientLog(sn Snapshot, list []ArchiveInfo) (ArchiveInfo, bool) {
	name, kind, _ := ArchiveName(ClientLogName)
	if slices.ContainsFunc(list, func(a ArchiveInfo) bool { return a.Name == name }) {
		return ArchiveInfo{}, false
	}
	if ok, err := s.exists(path.Join(sn.Dir(), ClientLogName)); err != nil || !ok {
		return ArchiveInfo{}, false
	}
	return ArchiveInfo{Name: name, File: ClientLogName, Kind: kind}, true
}

// FindArchive returns the archive of a finished snapshot shown as name
// (ErrNotFound if there is none, or archives are not enabled). Cheaper
// than ListArchives: the client log is only looked for when asked for.
func (s *Store) FindArchive(sn Snapshot, name string) (ArchiveInfo, error) {
	notFound := func() error {
		return wrap("find archive", s.abs(path.Join(sn.Dir(), name)), ErrNotFound, nil)
	}
	if !s.arch.opts.Enabled {
		return ArchiveInfo{}, notFound()
	}
	list, _, err := s.manifestArchives(sn)
	if err != nil {
		return ArchiveInfo{}, err
	}
	for _, a := range list {
		if a.Name == name {
			return a, nil
		}
	}
	if log, ok := s.clientLog(sn, list); ok && log.Name == name {
		return log, nil
	}
	return ArchiveInfo{}, notFound()
}

// StatArchive stats the archive file shown as name (cheap: no read). A file
// the manifest lists but the directory lacks is ErrCorrupt.
func (s *Store) StatArchive(sn Snapshot, name string) (ArchiveInfo, Stamp, error) {
	info, err := s.FindArchive(sn, name)
	if err != nil {
		return info, Stamp{}, err
	}
	rel := path.Join(sn.Dir(), info.File)
	st, err := s.statRel(rel)
	if err != nil {
		return info, Stamp{}, s.archiveFileErr("stat archive", rel, info, err)
	}
	if !st.IsRegular() {
		return info, st, wrap("stat archive", s.abs(rel), ErrCorrupt, errNotRegular)
	}
	return info, st, nil
}

func (s *Store) archiveFileErr(op, rel string, info ArchiveInfo, err error) error {
	switch {
	case errors.Is(err, errLoop):
		return wrap(op, s.abs(rel), ErrCorrupt, errors.New("is a symlink; not followed"))
	case info.InManifest && classify(err) == ErrNotFound:
		return wrap(op, s.abs(rel), ErrCorrupt, errors.New("listed in the manifest but missing"))
	}
	return wrap(op, s.abs(rel), nil, err)
}

// Archive is an opened archive of a snapshot: its index (or decoded blob),
// checked against the manifest. It is immutable apart from its read-ahead
// bookkeeping and safe for concurrent use; it holds no file descriptor.
type Archive struct {
	s     *Store
	info  ArchiveInfo
	rel   string // the archive file, relative to the store
	path  string // absolute path of the archive file, for messages
	stamp Stamp  // of the archive file read
	size  int64

	fixed *index.Fixed
	dyn   *index.Dynamic
	// A blob's decoded content is not kept here, for as long as the
	// archive is open, but in the store's bounded blob cache (blobData).

	crypt      *manifest.CryptConfig // key for an encrypted archive (nil without one)
	encrypted  bool                  // chunks must be encrypted (crypt-mode encrypt)
	unreadable error                 // why the content cannot be read (ErrEncrypted), or nil

	last        atomic.Int64 // last chunk read, for the sequential read-ahead
	prefetching atomic.Int32 // read-aheads running
}

// OpenArchive opens the archive of a finished snapshot shown as name (see
// ListArchives). It reads the whole index or blob file and checks it
// against the manifest as PBS's verify does — size and SHA-256 of the raw
// file for blobs, size and index checksum for indexes — so a file that does
// not match gives ErrCorrupt here, before anything is served from it.
// Encrypted archives open without a key, but Readable, ReadAt and View then
// fail with ErrEncrypted (and a blob's size is unknown, 0).
//
// For a PxarArchive it opens the index of the metadata stream (the whole
// archive for v1); OpenPxar opens the archive itself.
func (s *Store) OpenArchive(sn Snapshot, name string) (*Archive, error) {
	info, err := s.FindArchive(sn, name)
	if err != nil {
		return nil, err
	}
	return s.openArchive(sn, info)
}

// openArchive opens the archive file info describes (see OpenArchive).
func (s *Store) openArchive(sn Snapshot, info ArchiveInfo) (*Archive, error) {
	const op = "open archive"
	rel := path.Join(sn.Dir(), info.File)
	abs := s.abs(rel)
	limit := int64(maxIndexFile)
	if info.Kind == BlobArchive {
		limit = maxChunkFile
	}
	raw, st, err := s.readRel(rel, limit)
	if err != nil {
		return nil, s.archiveFileErr(op, rel, info, err)
	}
	a := &Archive{s: s, info: info, rel: rel, path: abs, stamp: st, encrypted: info.Encrypted()}
	a.last.Store(-2)
	if a.encrypted {
		a.crypt = s.arch.opts.Crypt
		if a.unreadable, err = s.keyMismatch(sn); err != nil {
			return nil, err
		}
	}
	if a.encrypted && a.crypt == nil && a.unreadable == nil {
		a.unreadable = wrap(op, abs, ErrEncrypted, errors.New("archive is encrypted and no key was given"))
	}
	switch info.Kind {
	case BlobArchive:
		if err := a.openBlob(raw); err != nil {
			return nil, err
		}
	case FixedArchive:
		fx, err := index.ParseFixed(raw)
		if err != nil {
			return nil, wrap(op, abs, ErrCorrupt, err)
		}
		if err := a.checkIndex(fx.ComputeCsum(), fx.Size); err != nil {
			return nil, err
		}
		a.fixed, a.size = fx, int64(fx.Size)
	case DynamicArchive, PxarArchive:
		dx, err := index.ParseDynamic(raw)
		if err != nil {
			return nil, wrap(op, abs, ErrCorrupt, err)
		}
		csum, size := dx.ComputeCsum()
		if err := a.checkIndex(csum, size); err != nil {
			return nil, err
		}
		a.dyn, a.size = dx, int64(size)
	}
	if a.size < 0 {
		return nil, wrap(op, abs, ErrCorrupt, fmt.Errorf("size %d out of range", uint64(a.size)))
	}
	return a, nil
}

// keyMismatch returns an ErrEncrypted error when the snapshot's manifest
// names a key (unprotected key-fingerprint) other than the one given: its
// encrypted archives cannot be read with it.
func (s *Store) keyMismatch(sn Snapshot) (reason, err error) {
	cfg := s.arch.opts.Crypt
	if cfg == nil {
		return nil, nil
	}
	m, _, err := s.Manifest(sn)
	if err != nil {
		return nil, err
	}
	fp, ok := manifestFingerprint(m)
	if !ok || fp == cfg.Fingerprint() {
		return nil, nil
	}
	return wrap("open archive", s.abs(sn.Dir()), ErrEncrypted,
		fmt.Errorf("snapshot is encrypted with the key %s, not with the given key %s", fp, cfg.Fingerprint())), nil
}

// manifestFingerprint returns unprotected key-fingerprint, if it is a string.
func manifestFingerprint(m *manifest.Manifest) (string, bool) {
	raw, ok := m.Unprotected().Get("key-fingerprint")
	if !ok {
		return "", false
	}
	var fp string
	if json.Unmarshal(raw, &fp) != nil {
		return "", false
	}
	return fp, true
}

// openBlob checks a blob file against the manifest and decodes it, for its
// size; the content goes to the blob cache.
func (a *Archive) openBlob(raw []byte) error {
	data, err := a.decodeBlob("open archive", raw)
	if data != nil {
		a.size = int64(len(data))
	}
	return err
}

// decodeBlob checks the blob file raw against the manifest and decodes it
// within the decode budget, keeping the result in the blob cache. It
// returns nil data and no error for an encrypted blob that cannot be
// decoded (a.unreadable says why).
func (a *Archive) decodeBlob(op string, raw []byte) ([]byte, error) {
	if a.info.InManifest {
		if err := a.checkRaw(raw); err != nil {
			return nil, err
		}
	}
	b, err := manifest.ParseBlob(raw)
	if err != nil {
		return nil, wrap(op, a.path, ErrCorrupt, err)
	}
	if a.info.InManifest && b.Encrypted() != a.encrypted {
		return nil, wrap(op, a.path, ErrCorrupt, fmt.Errorf("crypt mode mismatch: manifest says %q, blob is %s", a.info.CryptMode, b.Magic))
	}
	if b.Encrypted() {
		if a.unreadable != nil {
			return nil, nil
		}
		if a.crypt = a.s.arch.opts.Crypt; a.crypt == nil {
			a.unreadable = wrap(op, a.path, ErrEncrypted, errors.New("blob is encrypted and no key was given"))
			return nil, nil
		}
	}
	data, _, err := b.DecodeInto(a.crypt, budgetHeap{a.s.mem})
	if err != nil {
		return nil, wrap(op, a.path, decodeErrKind(err), err)
	}
	if data == nil {
		data = []byte{}
	}
	a.s.arch.blobs.add(a.stamp.ID(), data)
	return data, nil
}

// blobData returns a blob archive's decoded content: from the blob cache,
// else read, checked and decoded again — from the same file that was
// opened (ErrStale if it was replaced or changed since).
func (a *Archive) blobData() ([]byte, error) {
	const op = "read archive"
	if data, ok := a.s.arch.blobs.get(a.stamp.ID()); ok {
		return data, nil
	}
	raw, st, err := a.s.readRel(a.rel, maxChunkFile)
	if err != nil {
		return nil, a.s.archiveFileErr(op, a.rel, a.info, err)
	}
	if st.ID() != a.stamp.ID() {
		return nil, wrap(op, a.path, ErrStale, errors.New("the archive file changed since it was opened"))
	}
	data, err := a.decodeBlob(op, raw)
	if err == nil && data == nil {
		err = a.unreadable
	}
	return data, err
}

// checkRaw compares a blob file with the manifest's size and csum.
func (a *Archive) checkRaw(raw []byte) error {
	if uint64(len(raw)) != a.info.Size {
		return wrap("open archive", a.path, ErrCorrupt, fmt.Errorf("wrong size (%d != %d in the manifest)", len(raw), a.info.Size))
	}
	sum := sha256.Sum256(raw)
	return a.checkCsum(sum)
}

// checkIndex compares an index's computed checksum and size with the
// manifest's.
func (a *Archive) checkIndex(csum [32]byte, size uint64) error {
	if size != a.info.Size {
		return wrap("open archive", a.path, ErrCorrupt, fmt.Errorf("wrong size (%d != %d in the manifest)", size, a.info.Size))
	}
	return a.checkCsum(csum)
}

func (a *Archive) checkCsum(sum [32]byte) error {
	want, err := hex.DecodeString(a.info.Csum)
	if err != nil || !bytes.Equal(want, sum[:]) {
		return wrap("open archive", a.path, ErrCorrupt,
			fmt.Errorf("wrong index checksum (%x, manifest has %s)", sum, a.info.Csum))
	}
	return nil
}

// Info returns what the manifest says about the archive.
func (a *Archive) Info() ArchiveInfo { return a.info }

// Stamp returns the stamp of the archive file that was opened.
func (a *Archive) Stamp() Stamp { return a.stamp }

// Size returns the size of the content: the image or stream size of an
// index, the decoded size of a blob (0 for an encrypted blob without key).
func (a *Archive) Size() int64 { return a.size }

// Readable returns nil if the content can be read, or the ErrEncrypted
// error saying why not.
func (a *Archive) Readable() error { return a.unreadable }

// ChunkCount returns the number of chunks of an index archive (0 for blobs).
func (a *Archive) ChunkCount() int {
	switch {
	case a.fixed != nil:
		return len(a.fixed.Digests)
	case a.dyn != nil:
		return len(a.dyn.Entries)
	}
	return 0
}

// chunkAt returns the chunk holding offset off.
func (a *Archive) chunkAt(off uint64) (i int, digest [32]byte, start, end uint64, ok bool) {
	if a.fixed != nil {
		i, start, end, ok = a.fixed.ChunkAt(off)
		if ok {
			digest = a.fixed.Digests[i]
		}
		return
	}
	i, start, end, ok = a.dyn.ChunkAt(off)
	if ok {
		digest = a.dyn.Entries[i].Digest
	}
	return
}

// chunkRange returns chunk i's digest and range.
func (a *Archive) chunkRange(i int) (digest [32]byte, start, end uint64, ok bool) {
	if a.fixed != nil {
		start, end, ok = a.fixed.ChunkRange(i)
		if ok {
			digest = a.fixed.Digests[i]
		}
		return
	}
	start, end, ok = a.dyn.ChunkRange(i)
	if ok {
		digest = a.dyn.Entries[i].Digest
	}
	return
}

// chunk returns chunk i (range [start, end)), verified, from the cache or
// the chunk store, with a reference the caller releases.
func (a *Archive) chunk(i int, digest [32]byte, start, end uint64) (*chunk, error) {
	// Loaded with the store's key whatever the archive: the chunk's own
	// magic says whether it is encrypted, and the checks below compare that
	// with the archive's crypt mode.
	c, err := a.s.arch.cache.load(digest, func() (*chunk, error) { return a.s.loadChunk(digest, a.s.arch.opts.Crypt) })
	if err != nil && !a.encrypted && errors.Is(err, ErrEncrypted) {
		err = wrap("read chunk", a.s.abs(index.ChunkPath(digest)), ErrCorrupt,
			fmt.Errorf("crypt mode mismatch: archive is %q, chunk is encrypted", a.info.CryptMode))
	}
	if err == nil {
		switch {
		case c.encrypted != a.encrypted:
			err = wrap("read chunk", a.s.abs(index.ChunkPath(digest)), ErrCorrupt,
				fmt.Errorf("crypt mode mismatch: archive is %q, chunk encrypted=%v", a.info.CryptMode, c.encrypted))
		case uint64(len(c.data)) != end-start:
			err = wrap("read chunk", a.s.abs(index.ChunkPath(digest)), ErrCorrupt,
				fmt.Errorf("detected chunk with wrong length (%d != %d)", len(c.data), end-start))
		}
		if err != nil {
			c.release()
		}
	}
	if err != nil {
		return nil, wrap(fmt.Sprintf("read %s chunk %d (bytes %d-%d) of", a.info.Kind, i, start, end), a.path, nil, err)
	}
	return c, nil
}

// ReadAt implements io.ReaderAt over the content. It never returns bytes
// of a chunk that is missing or failed verification: on error (ErrCorrupt
// naming the chunk), n counts only the verified bytes of the chunks before
// the failing one.
func (a *Archive) ReadAt(p []byte, off int64) (int, error) {
	if a.unreadable != nil {
		return 0, a.unreadable
	}
	if off < 0 {
		return 0, wrap("read archive", a.path, ErrInvalid, fmt.Errorf("offset %d", off))
	}
	if off >= a.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	if a.info.Kind == BlobArchive {
		blob, err := a.blobData()
		if err != nil {
			return 0, err
		}
		n := copy(p, blob[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	n := 0
	for n < len(p) && off < a.size {
		i, digest, start, end, ok := a.chunkAt(uint64(off))
		if !ok {
			return n, wrap("read archive", a.path, ErrCorrupt, fmt.Errorf("no chunk holds offset %d", off))
		}
		c, err := a.chunk(i, digest, start, end)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], c.data[uint64(off)-start:])
		c.release()
		a.readAhead(i)
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readAhead notes that chunk i was read and, when the reads go forward
// chunk by chunk, loads the next depth chunks (the backend's read-ahead:
// readAheadChunks locally, deeper for a bucket) into the cache in the
// background, so that a sequential reader finds them decoded. At most
// depth loads per archive run at a time, and none when the cache could not
// keep them all beside the current one.
func (a *Archive) readAhead(i int) {
	prev := a.last.Swap(int64(i))
	if prev != int64(i)-1 && prev != int64(i) {
		return
	}
	depth := a.s.back.readAhead()
	for j := i + 1; j <= i+depth; j++ {
		digest, start, end, ok := a.chunkRange(j)
		if !ok || int64(depth+1)*int64(end-start) > a.s.arch.cache.limit || a.s.arch.cache.has(digest) {
			continue
		}
		if a.prefetching.Add(1) > int32(depth) {
			a.prefetching.Add(-1)
			return
		}
		started := a.s.arch.goBackground(func() {
			defer a.prefetching.Add(-1)
			c, err := a.chunk(j, digest, start, end)
			if err != nil {
				a.s.log.Debug("read-ahead failed", "err", err)
				return
			}
			c.release()
		})
		if !started {
			a.prefetching.Add(-1)
			return
		}
	}
}

// manifestText is what ManifestJSON shows: the manifest as pretty JSON and
// a newline and, when a key is configured, one extra top-level key saying
// whether the signature is valid (see SignatureCheckKey).
func (s *Store) manifestText(m *manifest.Manifest) []byte {
	pretty := m.MarshalPretty()
	if cfg := s.arch.opts.Crypt; cfg != nil {
		pretty = insertTopLevel(pretty, SignatureCheckKey, signatureStatus(m, cfg))
	}
	return append(pretty, '\n')
}

// SignatureCheckKey is the top-level key pbsfs adds to manifest.json when
// it was given a key: "valid", "invalid" (signed with this key, but the
// signed part does not match: changed after signing), "other key" (the
// manifest names a different key fingerprint) or "unsigned". PBS never
// writes a key of this name; it is not part of the stored manifest.
const SignatureCheckKey = "pbsfs-signature-check"

func signatureStatus(m *manifest.Manifest, cfg *manifest.CryptConfig) string {
	if _, signed := m.Signature(); !signed {
		return "unsigned"
	}
	if fp, ok := manifestFingerprint(m); ok && fp != cfg.Fingerprint() {
		return "other key"
	}
	if err := m.CheckSignature(cfg.IDKey()); err != nil {
		return "invalid"
	}
	return "valid"
}

// insertTopLevel adds "key": "value" to a serde-style pretty JSON object,
// in sorted key order. Top-level keys are the lines that start with exactly
// two spaces and a quote (nested ones are indented further, and strings
// never span lines).
func insertTopLevel(pretty []byte, key, value string) []byte {
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	entry := append(append(append([]byte("  "), k...), ": "...), v...)
	lines := bytes.SplitAfter(pretty, []byte("\n"))
	lastKey := -1
	for i, l := range lines {
		if !bytes.HasPrefix(l, []byte(`  "`)) {
			continue
		}
		name := l[2:]
		if end := bytes.Index(name, []byte(`": `)); end > 0 && string(name[1:end]) > key {
			out := make([]byte, 0, len(pretty)+len(entry)+2)
			for _, p := range lines[:i] {
				out = append(out, p...)
			}
			out = append(append(out, entry...), ",\n"...)
			for _, p := range lines[i:] {
				out = append(out, p...)
			}
			return out
		}
		lastKey = i
	}
	if lastKey < 0 || len(lines) < 2 {
		return pretty // not an object with keys; leave it alone
	}
	// Last key: after the last top-level value, which ends on the line
	// before the closing brace.
	out := make([]byte, 0, len(pretty)+len(entry)+2)
	for _, p := range lines[:len(lines)-1] {
		out = append(out, p...)
	}
	out = bytes.TrimSuffix(out, []byte("\n"))
	out = append(append(append(out, ",\n"...), entry...), '\n')
	return append(out, lines[len(lines)-1]...)
}
