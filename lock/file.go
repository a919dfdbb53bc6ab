package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
)

// lockFileMode is the mode of lock files (pbs-config open_backup_lockfile).
const lockFileMode = 0o660

// lockDirMode is the mode for lock directories before the umask, as Rust's
// std::fs::create_dir_all uses it.
const lockDirMode = 0o777

// openFlags are the flags PBS opens lock files with (open_file_locked); Go
// adds O_CLOEXEC itself. O_NOFOLLOW is ours: lock files are always regular
// files made by PBS or pbsfs, so a symlink in their place was planted — by
// anyone who can write to the lock directory or, in the legacy scheme, to
// the snapshot directory — and following it would open (read-write) and
// lock a file of their choosing, as root. It fails with ELOOP instead.
const openFlags = os.O_RDWR | os.O_APPEND | unix.O_NOFOLLOW

// pollInterval is the retry delay while waiting for a manifest lock. PBS
// blocks in flock and interrupts it with a timer; polling is equivalent for
// our purposes.
const pollInterval = 10 * time.Millisecond

// maxCreateRaces bounds how often we retry when a lock file vanishes between
// losing the creation race and opening the winner's file.
const maxCreateRaces = 8

// lockFileNB takes a non-blocking flock on the lock file at path (Run
// scheme), creating it and its parent directories as needed, then verifies
// the lock with a double stat.
//
// gofrs/flock is not used here: it opens by path with its own flags and cannot
// adopt a descriptor, but we want to flock exactly the descriptor that the
// atomic create (temporary file with mode and owner, renameat2 NOREPLACE)
// returned, and then fstat that same descriptor for the double stat.
func (l *Locker) lockFileNB(path string, exclusive bool) (*Lock, error) {
	if err := l.mkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := l.openOrCreate(path, true)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flockFile(f, how|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %w", ErrWouldBlock, err)
		}
		return nil, fmt.Errorf("flock: %w", err)
	}
	if l.testHookLocked != nil {
		l.testHookLocked(path)
	}
	fi, err := f.Stat()
	if err == nil {
		err = sameFile(fi, path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{path: path, f: f}, nil
}

// lockFileWait takes an exclusive flock on the lock file at path, waiting up
// to timeout, then verifies it with a double stat. The waiting uses gofrs/flock's
// TryLockContext, which re-opens the path for every attempt, so a lock file
// that is unlinked and re-created while we wait is picked up. A lock file
// that does not exist yet is created atomically with mode and owner (and,
// with mkParents, its directory) before gofrs opens it: gofrs never creates
// it itself, since it would get the umask and our owner instead of 0660
// backup:backup. Lock files usually exist (PBS and pbsfs leave them), so
// the common case is one open. A done parent ctx ends the wait with an error
// wrapping parent.Err(), told apart from the timeout.
func (l *Locker) lockFileWait(parent context.Context, path string, timeout time.Duration, mkParents bool) (*Lock, error) {
	ctx := parent
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, timeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		if err := parent.Err(); err != nil {
			return nil, fmt.Errorf("waiting for the lock: %w", err)
		}
		fl := flock.New(path, flock.SetFlag(openFlags), flock.SetPermissions(lockFileMode))
		var ok bool
		var err error
		if timeout > 0 {
			ok, err = fl.TryLockContext(ctx, pollInterval)
		} else {
			ok, err = fl.TryLock()
		}
		if err != nil || !ok {
			switch {
			case parent.Err() != nil:
				return nil, fmt.Errorf("waiting for the lock: %w", parent.Err())
			case errors.Is(err, fs.ErrNotExist) && ctx.Err() == nil && attempt < maxCreateRaces:
				// Not there yet, or unlinked meanwhile: create it (and its
				// directory) and try again.
				f, err := l.openOrCreate(path, mkParents)
				if err != nil {
					return nil, err
				}
				f.Close()
				continue
			case timeout > 0 && (err == nil || ctx.Err() != nil):
				return nil, fmt.Errorf("%w after %v", ErrTimeout, timeout)
			case err != nil:
				return nil, fmt.Errorf("flock: %w", err)
			default:
				return nil, fmt.Errorf("%w: %w", ErrWouldBlock, unix.EWOULDBLOCK)
			}
		}
		if l.testHookLocked != nil {
			l.testHookLocked(path)
		}
		fi, err := fl.Stat() // fstat of the locked descriptor
		if err == nil {
			err = sameFile(fi, path)
		}
		if err != nil {
			_ = fl.Unlock()
			return nil, err
		}
		return &Lock{path: path, fl: fl}, nil
	}
}

// sameFile is the double stat: the locked descriptor (fi) must still be the
// file at path, else the file was unlinked or replaced meanwhile and our lock
// protects nothing.
func sameFile(fi os.FileInfo, path string) error {
	cur, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat: %w", err)
	}
	if err != nil || !os.SameFile(fi, cur) {
		return ErrReplaced
	}
	return nil
}

// TempPrefix starts the name of the temporary file a lock file is created
// as (see createAtomic). One is left behind only by a process killed
// between creating and renaming it, a matter of microseconds; the
// datastore's cleanup removes old ones (the legacy scheme's lock files live
// in snapshot directories). A short prefix: the final name may already be
// close to the 255-byte limit.
const TempPrefix = ".pbsfs-lck.tmp_"

// openOrCreate opens the lock file at path, creating it atomically if it does
// not exist: a temporary file in the same directory gets mode 0660 and the
// configured owner and is moved into place with renameat2(RENAME_NOREPLACE)
// (link+unlink where the file system lacks that flag); if another process
// won the race, its file is opened instead (proxmox-sys
// atomic_open_or_create_file). With mkParents, a parent directory removed
// meanwhile is re-created.
func (l *Locker) openOrCreate(path string, mkParents bool) (*os.File, error) {
	for range maxCreateRaces {
		f, err := os.OpenFile(path, openFlags, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		f, err = l.createAtomic(path)
		if err == nil {
			return f, nil
		}
		switch {
		case errors.Is(err, fs.ErrExist):
			// Lost the race: loop and open the winner's file.
		case errors.Is(err, fs.ErrNotExist) && mkParents:
			// The directory was removed meanwhile (RemoveSnapshotLockFiles
			// in the Dirs scheme removes the per-snapshot directory).
			if err := l.mkdirAll(filepath.Dir(path)); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("create lock file %q: lock file keeps vanishing", path)
}

// createAtomic creates path via a temporary file in its directory (opened
// by path: the lock directory outside the datastore). It returns an error
// satisfying errors.Is(err, fs.ErrExist) if path appeared meanwhile.
func (l *Locker) createAtomic(path string) (*os.File, error) {
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("create lock file %q: %w", path, err)
	}
	defer dir.Close()
	return l.createAtomicAt(int(dir.Fd()), filepath.Base(path), path)
}

// createAtomicAt creates name in the directory open as dirfd via a
// temporary file given mode and owner first; path names it in messages.
func (l *Locker) createAtomicAt(dirfd int, name, path string) (*os.File, error) {
	var tmpName string
	var fd int
	for {
		var rnd [6]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, fmt.Errorf("create lock file %q: %w", path, err)
		}
		tmpName = TempPrefix + hex.EncodeToString(rnd[:])
		var err error
		fd, err = unix.Openat(dirfd, tmpName, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create lock file %q: %w", path, err)
		}
		break
	}
	tmp := os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(path), tmpName))
	fail := func(err error) (*os.File, error) {
		tmp.Close()
		_ = unix.Unlinkat(dirfd, tmpName, 0)
		return nil, err
	}
	// fchmod is not subject to the umask.
	if err := tmp.Chmod(lockFileMode); err != nil {
		return fail(fmt.Errorf("create lock file %q: %w", path, err))
	}
	if l.cfg.UID != -1 || l.cfg.GID != -1 {
		if err := tmp.Chown(l.cfg.UID, l.cfg.GID); err != nil {
			return fail(fmt.Errorf("create lock file %q: set owner %d:%d: %w", path, l.cfg.UID, l.cfg.GID, err))
		}
	}
	err := unix.Renameat2(dirfd, tmpName, dirfd, name, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// File system without RENAME_NOREPLACE: link fails with EEXIST too.
		err = unix.Linkat(dirfd, tmpName, dirfd, name, 0)
		_ = unix.Unlinkat(dirfd, tmpName, 0)
	}
	if err != nil {
		return fail(fmt.Errorf("move lock file into place at %q: %w", path, err))
	}
	return tmp, nil
}

// mkdirAll creates dir and its missing parents with mode 0777 minus the umask
// (like Rust's create_dir_all, which PBS uses) and gives every directory it
// creates the configured owner. PBS's daemons create these directories as
// user backup; if pbsfs runs as root, a root-owned lock directory would keep
// the PBS proxy from creating its lock files in it.
func (l *Locker) mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("create lock directory %q: %w", dir, unix.ENOTDIR)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create lock directory %q: %w", dir, err)
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := l.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, lockDirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // created concurrently
		}
		return fmt.Errorf("create lock directory %q: %w", dir, err)
	}
	if l.cfg.UID != -1 || l.cfg.GID != -1 {
		if err := os.Lchown(dir, l.cfg.UID, l.cfg.GID); err != nil {
			return fmt.Errorf("create lock directory %q: set owner %d:%d: %w", dir, l.cfg.UID, l.cfg.GID, err)
		}
	}
	return nil
}

// lockDirNB takes a non-blocking flock on the datastore directory rel
// (Dirs and Legacy schemes, proxmox-sys lock_dir_noblock: open O_RDONLY|
// O_DIRECTORY|O_CLOEXEC, flock LOCK_NB). We resolve rel beneath the
// datastore and follow no symlink anywhere on the way (openBeneath, ELOOP),
// as the datastore resolves its own files: a symlink planted on the path
// would lock a directory of the planter's choosing. gofrs/flock is not
// used: it is made for lock files (it opens with O_CREATE by default and,
// on EIO/EBADF, re-opens the path O_RDWR, which a directory cannot be),
// while here an existing directory must be opened read-only, never
// created, and a missing one reported as such.
func (l *Locker) lockDirNB(rel, what string, exclusive bool) (*Lock, error) {
	f, err := l.openBeneath(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("unable to open %s directory for locking: %w", what, err)
	}
	path := f.Name()
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flockFile(f, how|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("unable to acquire lock on %s directory %q: %w: %w", what, path, ErrWouldBlock, err)
		}
		return nil, fmt.Errorf("unable to acquire lock on %s directory %q: %w", what, path, err)
	}
	return &Lock{path: path, f: f}, nil
}

// flockFile calls flock(2) on f's descriptor, retrying on EINTR.
func flockFile(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return ferr
}

// LockFile takes an exclusive flock on the lock file at path, waiting up to
// timeout, with the double stat; a missing file is created atomically with
// mode 0660 and owner uid:gid (-1 keeps the creator's) in its existing
// directory. It is PBS's open_backup_lockfile for the lock files that
// belong to no datastore object: the config lock
// /etc/proxmox-backup/.datastore.lck and the active-operations lock.
func LockFile(ctx context.Context, path string, timeout time.Duration, uid, gid int) (*Lock, error) {
	l := &Locker{cfg: Config{UID: uid, GID: gid}}
	lk, err := l.lockFileWait(ctx, path, timeout, false)
	if err != nil {
		return nil, fmt.Errorf("unable to acquire lock %q: %w", path, err)
	}
	return lk, nil
}
