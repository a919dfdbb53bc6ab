package datastore

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"pbsfs/index"
)

// backend is where a Store reads from: the datastore directory
// (localBackend, below) or the PBS 4 S3 bucket the datastore lives in
// (s3Backend, s3backend.go). Every read of the tree, of metadata files and
// of chunks goes through it; what a backend returns is checked the same way
// whichever it is (manifests decoded and their sizes checked, indexes
// checked against the manifest, every chunk verified in loadChunk).
//
// Locks, writes and the cleanup of temp files are not part of it: they
// exist for a local directory only (a bucket store is always read-only,
// OpenS3).
//
// Paths are datastore-relative with "/" separators ("" is the root).
// Errors are classified by classify: a missing name is fs.ErrNotExist (or
// a tagged ErrNotFound), a file that is not a regular file or too large
// errNotRegular / errTooBig.
type backend interface {
	// stat returns the stamp of rel, a file or a directory.
	stat(rel string) (Stamp, error)
	// readDir lists the directory rel: names and whether each is a
	// directory (a symlink to one is not), unsorted.
	readDir(rel string) ([]dirEntry, error)
	// readFile reads the whole regular file rel, at most limit bytes (a
	// larger one is errTooBig), into a buffer from pool (nil: a new one),
	// and returns the stamp of the very file read. On error nothing is
	// kept from the pool.
	readFile(rel string, limit int64, pool *bufPool) ([]byte, Stamp, error)
	// exists reports whether rel exists (as anything, symlinks included).
	exists(rel string) (bool, error)
	// readChunk reads the raw chunk file (a DataBlob, not verified) of
	// digest, at most limit bytes, into a buffer from pool that the caller
	// owns (it goes back to the pool when the chunk is released). A
	// missing chunk is ErrNotFound.
	readChunk(digest [32]byte, limit int64, pool *bufPool) ([]byte, error)
	// badChunk is told of a chunk readChunk gave that failed verification
	// (a backend that caches chunks drops its copy).
	badChunk(digest [32]byte)
	// readAhead is how many chunks a sequential archive reader gets loaded
	// ahead of it (see Archive.readAhead): deeper where a chunk costs a
	// round trip.
	readAhead() int
}

// dirEntry is one name of a directory listing.
type dirEntry struct {
	name  string
	isDir bool
}

// localBackend reads the datastore directory through the root descriptor,
// with openat2 never following a symlink nor leaving the root (fsutil.go).
type localBackend struct{ s *Store }

// readAheadChunks is how many chunks a sequential reader of a local store
// gets decoded ahead of it, concurrently: on two cores, the next two
// chunks decode while the current one is copied out.
const readAheadChunks = 2

func (b localBackend) readAhead() int { return readAheadChunks }

// stat stats a path relative to the root, not following symlinks
// anywhere (a symlink gives ELOOP): openat2(O_PATH), fstat, close.
func (b localBackend) stat(rel string) (Stamp, error) {
	s := b.s
	fd, err := s.openRelFd(rel, unix.O_PATH, 0)
	if err != nil {
		return Stamp{}, err
	}
	defer unix.Close(fd)
	return s.fstatFd(fd, rel)
}

// readFile reads a whole regular file below the root, at most limit bytes
// (a larger file is an error). It returns the content and the stamp of the
// very file read. Anything else found under that name is refused, as
// errNotRegular, without blocking: a FIFO planted in the store is opened
// with O_NONBLOCK (a plain open would wait for a writer forever, hanging
// every request that reads it), a socket cannot be opened (ENXIO).
func (b localBackend) readFile(rel string, limit int64, pool *bufPool) ([]byte, Stamp, error) {
	s := b.s
	fd, err := s.openRelFd(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENXIO) { // a socket
		return nil, Stamp{}, fmt.Errorf("%w: %w", err, errNotRegular)
	}
	if err != nil {
		return nil, Stamp{}, err
	}
	defer unix.Close(fd)
	name := s.abs(rel)
	st, err := s.fstatFd(fd, rel)
	if err != nil {
		return nil, Stamp{}, err
	}
	if !st.IsRegular() {
		return nil, st, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	if st.Size > limit {
		return nil, st, fmt.Errorf("%s: %d bytes, larger than the limit of %d: %w", name, st.Size, limit, errTooBig)
	}
	var buf []byte
	if pool != nil {
		if buf, err = pool.Get(int(st.Size)); err != nil {
			return nil, st, fmt.Errorf("%s: %w", name, err)
		}
		buf = buf[:st.Size]
	} else {
		buf = make([]byte, st.Size)
	}
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if pool != nil {
				pool.Put(buf)
			}
			return nil, st, fmt.Errorf("read %s: %w", name, &os.PathError{Op: "read", Path: name, Err: err})
		}
		if k == 0 {
			break // shorter than fstat said (truncated meanwhile): what is there
		}
		n += k
	}
	return buf[:n], st, nil
}

// readDir lists a directory below the root; an entry is a directory only
// if it really is one (not a symlink to one).
func (b localBackend) readDir(rel string) ([]dirEntry, error) {
	ents, err := b.s.readDirRel(rel)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, len(ents))
	for i, e := range ents {
		out[i] = dirEntry{name: e.Name(), isDir: b.isDirEntry(rel, e)}
	}
	return out, nil
}

// isDirEntry reports whether a directory entry is a real directory (not a
// symlink to one), stat-ing only when the file system gave no type.
func (b localBackend) isDirEntry(dirRel string, e os.DirEntry) bool {
	t := e.Type()
	if t&os.ModeSymlink != 0 {
		return false
	}
	if t.IsDir() {
		return true
	}
	if t&os.ModeType != 0 {
		return false
	}
	// DT_UNKNOWN (some file systems): ask.
	st, err := b.stat(path.Join(dirRel, e.Name()))
	return err == nil && st.IsDir()
}

// exists reports whether rel exists (as anything, symlinks included).
func (b localBackend) exists(rel string) (bool, error) {
	s := b.s
	dir, name := path.Split(rel)
	d, err := s.openRelFd(path.Clean("./"+dir), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(d)
	return s.existsAt(d, name, rel)
}

// readChunk reads the chunk file .chunks/<4 hex>/<digest>.
func (b localBackend) readChunk(digest [32]byte, limit int64, pool *bufPool) ([]byte, error) {
	raw, _, err := b.readFile(index.ChunkPath(digest), limit, pool)
	return raw, err
}

func (b localBackend) badChunk([32]byte) {}

// The Store's read paths call these, which ask the backend.

func (s *Store) statRel(rel string) (Stamp, error) { return s.back.stat(rel) }

// readRel is readRelInto without a pool.
func (s *Store) readRel(rel string, limit int64) ([]byte, Stamp, error) {
	return s.back.readFile(rel, limit, nil)
}

func (s *Store) readRelInto(rel string, limit int64, pool *bufPool) ([]byte, Stamp, error) {
	return s.back.readFile(rel, limit, pool)
}

func (s *Store) exists(rel string) (bool, error) { return s.back.exists(rel) }
