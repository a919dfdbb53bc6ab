package datastore

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// resolve is the openat2 resolution every access below the root uses: stay
// beneath the root and follow no symlink at all (not even a trailing one).
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Shape errors of files found in the store; classify maps both to ErrCorrupt.
var (
	errNotRegular = errors.New("not a regular file")
	errTooBig     = errors.New("file too large")
)

// Stamp is what pbsfs knows about a file or directory's identity and
// attributes, taken from one fstat.
type Stamp struct {
	Dev, Ino     uint64
	Size         int64
	Mode         os.FileMode // permission bits and type
	UID, GID     uint32
	Mtime, Ctime time.Time
	Nlink        uint64
}

// FileID is a file's identity: the one answer to "is this still the same
// file" for every cache and check of this package and of pbsfs's nodes. A
// rewrite by PBS (a new inode through rename) or a change in place (size,
// mtime or ctime) gives a new FileID, so nothing kept under an old one is
// ever served for the new content. It is comparable (a map key).
type FileID struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds
}

// ID returns the identity of the file the stamp was taken of. The ctime
// in it also changes with the mode, owner and link count.
func (st Stamp) ID() FileID {
	return FileID{st.Dev, st.Ino, st.Size, st.Mtime.UnixNano(), st.Ctime.UnixNano()}
}

// Digest folds the identity into one non-zero number (FNV-1a over the
// fields), for holders of many identities that keep 8 bytes instead of 40
// and can live with a 2^-64 chance of taking a change for none.
func (id FileID) Digest() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, v := range [...]uint64{id.Dev, id.Ino, uint64(id.Size), uint64(id.Mtime), uint64(id.Ctime)} {
		h = (h ^ v) * prime
	}
	if h == 0 {
		h = 1
	}
	return h
}

// IsZero reports whether the stamp is empty (the file did not exist).
func (st Stamp) IsZero() bool { return st.Ino == 0 && st.Dev == 0 }

// IsDir reports whether the stamp describes a directory.
func (st Stamp) IsDir() bool { return st.Mode.IsDir() }

// IsRegular reports whether the stamp describes a regular file.
func (st Stamp) IsRegular() bool { return st.Mode.IsRegular() }

func stampOf(st *unix.Stat_t) Stamp {
	mode := os.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFREG:
	default:
		mode |= os.ModeIrregular
	}
	return Stamp{
		Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mode: mode,
		UID: st.Uid, GID: st.Gid,
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		Nlink: uint64(st.Nlink),
	}
}

// openRelFd opens a path relative to the datastore root without following
// any symlink and without leaving the root, and returns the bare descriptor
// (the caller closes it). The per-request paths (stat, read) use it rather
// than openRel: os.NewFile costs an extra fcntl syscall and allocations, and
// pbsfs makes several of these calls for every FUSE request.
func (s *Store) openRelFd(rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolve}
	root, err := s.g.acquire()
	if err != nil {
		return -1, err
	}
	defer s.g.release()
	for {
		fd, err := unix.Openat2(root, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: s.abs(rel), Err: err}
		}
		return fd, nil
	}
}

// openRel is openRelFd returning an *os.File.
func (s *Store) openRel(rel string, flags int, mode uint32) (*os.File, error) {
	fd, err := s.openRelFd(rel, flags, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), s.abs(rel)), nil
}

// fstatFd stats the open descriptor fd of rel.
func (s *Store) fstatFd(fd int, rel string) (Stamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Stamp{}, &os.PathError{Op: "fstat", Path: s.abs(rel), Err: err}
	}
	return stampOf(&st), nil
}

func fstat(f *os.File) (Stamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Stamp{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return stampOf(&st), nil
}

// readDirRel lists a directory below the root: names and types, unsorted.
func (s *Store) readDirRel(rel string) ([]os.DirEntry, error) {
	f, err := s.openRel(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", f.Name(), err)
	}
	return ents, nil
}

// existsAt reports whether name exists in the directory open as d (rel is
// its path, for messages).
func (s *Store) existsAt(d int, name, rel string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return true, nil
	}
	if err == unix.ENOENT {
		return false, nil
	}
	return false, &os.PathError{Op: "stat", Path: s.abs(rel), Err: err}
}
