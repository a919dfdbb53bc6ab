package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// resolveBeneath is how lock files and directories inside the datastore
// (Dirs and Legacy schemes) are resolved, as the datastore package resolves
// its own files: beneath Base, following no symlink at all. Whoever can
// write to the datastore can plant a symlink on the path; following it
// would open and lock (as root) a file or directory of their choosing.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens rel (relative to Base) with openat2 and resolveBeneath;
// a symlink anywhere on the path gives ELOOP. The file is named by its full
// path.
func (l *Locker) openBeneath(rel string, flags int, mode uint32) (*os.File, error) {
	path := filepath.Join(l.cfg.Base, rel)
	base, err := unix.Open(l.cfg.Base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: l.cfg.Base, Err: err}
	}
	defer unix.Close(base)
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveBeneath}
	for {
		fd, err := unix.Openat2(base, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// lockFileBeneathWait is lockFileWait for a lock file inside the datastore
// (rel below Base; Legacy's manifest lock): every open resolves beneath the
// datastore, a missing file is created atomically in its directory (which
// is never created), and the file is re-opened for every attempt while
// waiting, so one unlinked and re-created meanwhile is picked up. The
// double stat compares the locked descriptor with a fresh beneath-resolved
// look at rel. A done parent ends the wait as in lockFileWait.
func (l *Locker) lockFileBeneathWait(parent context.Context, rel string, timeout time.Duration) (*Lock, error) {
	deadline := time.Now().Add(timeout)
	for {
		if err := parent.Err(); err != nil {
			return nil, fmt.Errorf("waiting for the lock: %w", err)
		}
		f, err := l.openOrCreateBeneath(rel)
		if err != nil {
			return nil, err
		}
		err = flockFile(f, unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			if timeout <= 0 {
				return nil, fmt.Errorf("%w: %w", ErrWouldBlock, err)
			}
			if !time.Now().Before(deadline) {
				return nil, fmt.Errorf("%w after %v", ErrTimeout, timeout)
			}
			select {
			case <-parent.Done():
				return nil, fmt.Errorf("waiting for the lock: %w", parent.Err())
			case <-time.After(pollInterval):
			}
			continue
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock: %w", err)
		}
		path := filepath.Join(l.cfg.Base, rel)
		if l.testHookLocked != nil {
			l.testHookLocked(path)
		}
		if err := l.sameFileBeneath(f, rel); err != nil {
			f.Close()
			return nil, err
		}
		return &Lock{path: path, f: f}, nil
	}
}

// openOrCreateBeneath opens the lock file rel below Base read-write,
// creating it atomically (createAtomicAt) in its existing directory when
// missing.
func (l *Locker) openOrCreateBeneath(rel string) (*os.File, error) {
	for range maxCreateRaces {
		f, err := l.openBeneath(rel, openFlags, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		dir, err := l.openBeneath(filepath.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, err
		}
		f, err = l.createAtomicAt(int(dir.Fd()), filepath.Base(rel), filepath.Join(l.cfg.Base, rel))
		dir.Close()
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Lost the creation race: open the winner's file.
	}
	return nil, fmt.Errorf("create lock file %q: lock file keeps vanishing", filepath.Join(l.cfg.Base, rel))
}

// sameFileBeneath is the double stat of a lock file inside the datastore.
func (l *Locker) sameFileBeneath(f *os.File, rel string) error {
	var held, cur unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	now, err := l.openBeneath(rel, unix.O_PATH, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ErrReplaced
		}
		return fmt.Errorf("stat: %w", err)
	}
	defer now.Close()
	if err := unix.Fstat(int(now.Fd()), &cur); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if cur.Dev != held.Dev || cur.Ino != held.Ino {
		return ErrReplaced
	}
	return nil
}
