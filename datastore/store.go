package datastore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sys/unix"

	"pbsfs/lock"
	"pbsfs/manifest"
)

// DefaultCacheSize is the number of decoded manifests kept when
// Options.CacheSize is zero. A decoded manifest of a typical VM backup takes
// about 5 KiB with its JSON text, so the default stays near 5 MB. pbsfs
// keeps what a walk needs of every manifest (the sizes and short notes) in
// its own nodes; this cache serves repeated opens of the same few
// manifests, and a larger one would only grow the heap of a walk over a
// large store.
const DefaultCacheSize = 1024

// Options configure Open.
type Options struct {
	Lock      lock.Config // Base is set by Open
	ReadOnly  bool        // refuse every change with ErrReadOnly
	CacheSize int         // decoded-manifest LRU entries; 0 = DefaultCacheSize
	Logger    *slog.Logger
	Archives  ArchiveOptions // archive contents, key and chunk cache (archive.go)
	// PBS connects the store to the PBS on the host (neighbour.go); nil:
	// none.
	PBS *PBSOptions
	// DecodeBudget bounds the memory blobs are read and decoded into
	// (manifests, blob archives, chunks), cached or not, until collected;
	// a decode that does not fit fails (ErrIO) without allocating. 0 =
	// DefaultDecodeBudget (more with caches larger than the defaults).
	// See memory.go.
	DecodeBudget int64
}

// Store is an open datastore. It is safe for concurrent use.
type Store struct {
	path     string  // the datastore directory, or s3://BUCKET/STORE (OpenS3)
	back     backend // where reads go (backend.go): localBackend, or the bucket
	bucket   *s3Backend
	g        *guard // the root descriptor (all access is relative to it) and the PBS rules (neighbour.go); no descriptor for a bucket
	locker   *lock.Locker
	lockDir  string // as configured ("" = the lock package's default)
	readOnly bool
	roReason error // why changes are refused beyond the user's choice (a bucket store), or nil
	log      *slog.Logger
	cache    *lru.Cache[FileID, *cachedManifest]
	corrupt  *lru.Cache[FileID, error] // manifests that do not decode, by identity (see loadManifest)
	arch     *archiveState
	mem      *memBudget // Options.DecodeBudget (memory.go)

	// s3Hint: no datastore.cfg section, but .using markers (written by
	// PBS's GC for S3 datastores only) were seen: treat as S3-backed.
	s3Hint atomic.Bool

	groupNotesMu sync.Mutex // serialises this process's group-notes writers (PBS 3.x takes no lock)

	// testHookDirSync, if set (tests only), replaces the fsync of the
	// directory after a replaced file was renamed into place.
	testHookDirSync func(fd int) error
}

// Open opens the datastore at path. It must be a directory containing the
// .chunks directory of a PBS datastore.
func Open(path string, o Options) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, wrap("open datastore", path, ErrInvalid, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, wrap("open datastore", abs, nil, err)
	}
	if !st.IsDir() {
		return nil, wrap("open datastore", abs, ErrInvalid, errors.New("not a directory"))
	}
	if cs, err := os.Lstat(filepath.Join(abs, ".chunks")); err != nil || !cs.IsDir() {
		return nil, wrap("open datastore", abs, ErrInvalid, errors.New("not a PBS datastore (no .chunks directory)"))
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, wrap("open datastore", abs, nil, os.NewSyscallError("open", err))
	}
	var rootSt unix.Stat_t
	if err := unix.Fstat(fd, &rootSt); err != nil {
		unix.Close(fd)
		return nil, wrap("open datastore", abs, nil, os.NewSyscallError("fstat", err))
	}
	lc := o.Lock
	lc.Base = abs
	if lc.Store == "" {
		lc.Store = filepath.Base(abs)
	}
	locker, err := lock.New(lc)
	if err != nil {
		unix.Close(fd)
		return nil, wrap("open datastore", abs, ErrInvalid, err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var pbs *PBSOptions
	if o.PBS != nil {
		c := *o.PBS
		pbs = &c
	}
	g, err := newGuard(abs, fd, &rootSt, pbs, logger)
	if err != nil {
		return nil, wrap("open datastore", abs, nil, err)
	}
	store, err := newStoreState(abs, o, logger)
	if err != nil {
		g.close()
		return nil, err
	}
	store.g, store.locker, store.lockDir, store.readOnly = g, locker, lc.Dir, o.ReadOnly
	store.back = localBackend{store}
	if pbs == nil && usingMarkers(abs) {
		store.s3Hint.Store(true)
		logger.Warn("datastore looks like the local cache of an S3-backed PBS datastore (.using markers found, "+
			"no datastore.cfg section): changes are refused; make them through PBS", "datastore", abs)
	}
	return store, nil
}

// newStoreState makes a Store's caches and budget, reading nothing; the caller
// sets where it reads from.
func newStoreState(path string, o Options, logger *slog.Logger) (*Store, error) {
	size := o.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	cache, err := lru.New[FileID, *cachedManifest](size)
	if err != nil {
		return nil, wrap("open datastore", path, ErrInvalid, err)
	}
	corrupt, err := lru.New[FileID, error](size)
	if err != nil {
		return nil, wrap("open datastore", path, ErrInvalid, err)
	}
	budget := o.DecodeBudget
	if budget <= 0 {
		// The caches and the pool live within the budget; leave the
		// default's room for decodes beside larger ones.
		chunks, blobs := o.Archives.cacheLimits()
		budget = max(DefaultDecodeBudget, max(chunks, 0)+poolBytes(chunks)+max(blobs, 0)+2*manifest.MaxBlobSize)
	}
	mem := newMemBudget(budget)
	return &Store{
		path:    path,
		log:     logger,
		cache:   cache,
		corrupt: corrupt,
		arch:    newArchiveState(o.Archives, mem),
		mem:     mem,
	}, nil
}

// Close waits for background chunk read-ahead, then releases the store's
// root descriptor.
func (s *Store) Close() error {
	s.arch.close() // waits for chunk read-ahead (archive.go)
	if s.bucket != nil {
		s.bucket.close()
		return nil
	}
	return s.g.close()
}

// Path is the absolute path of the datastore root, or s3://BUCKET/STORE
// for a store read from its bucket.
func (s *Store) Path() string { return s.path }

// ReadOnly reports whether the store refuses changes.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Locker is the lock scheme in use.
func (s *Store) Locker() *lock.Locker { return s.locker }

// abs turns a datastore-relative path into an absolute one for messages.
func (s *Store) abs(rel string) string {
	if rel == "" {
		return s.path
	}
	if s.bucket != nil {
		return s.path + "/" + rel
	}
	return filepath.Join(s.path, rel)
}

// CreateOptions configure Create.
type CreateOptions struct {
	// ChunkDirs creates the 65,536 .chunks/XXXX prefix directories as PBS
	// does. Tests and demos that hold no chunks can leave it off.
	ChunkDirs bool
}

// Create makes a new, empty datastore at path (which must not exist or be an
// empty directory): the .chunks directory and the .lock file.
func Create(path string, o CreateOptions) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return wrap("create datastore", path, nil, err)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return wrap("create datastore", path, nil, err)
	}
	if len(ents) > 0 {
		return wrap("create datastore", path, ErrNotEmpty, errors.New("directory not empty"))
	}
	chunks := filepath.Join(path, ".chunks")
	if err := os.Mkdir(chunks, 0o750); err != nil {
		return wrap("create datastore", chunks, nil, err)
	}
	if o.ChunkDirs {
		for i := 0; i < 1<<16; i++ {
			d := filepath.Join(chunks, fmt.Sprintf("%04x", i))
			if err := os.Mkdir(d, 0o750); err != nil {
				return wrap("create datastore", d, nil, err)
			}
		}
	}
	lf := filepath.Join(path, ".lock")
	if err := os.WriteFile(lf, nil, 0o644); err != nil {
		return wrap("create datastore", lf, nil, err)
	}
	return nil
}
