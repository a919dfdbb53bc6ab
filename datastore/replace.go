package datastore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every temporary file pbsfs writes into the
// datastore. A file with this prefix is pbsfs's own and, once its writer is
// gone, garbage (see CleanupTemps). Its writer holds an exclusive flock on
// it from right after creating it until it has been renamed into place, so
// a temp file nobody holds a flock on is a dead writer's.
const TempPrefix = ".pbsfs-tmp-"

// fileOwner is the owner, group and mode a replaced file must keep.
type fileOwner struct {
	uid, gid uint32
	mode     os.FileMode
}

// replaceFile atomically replaces dirRel/name with data: a temp file in the
// same directory (flocked while it exists, see TempPrefix), created with the
// target's mode and given its owner (fchown, and fchmod only when the umask
// took bits), fsync, rename over the target, fsync the directory. On any
// error up to the rename the temp file is removed and the target is
// untouched. Once the rename is done the new file is what everyone reads:
// the save happened, and it is reported as such. A failing directory fsync
// after it (the rename might not survive a crash of the machine) is logged,
// not returned — an error would make the caller retry or give up a save
// that is in place. It returns the stamp of the new file.
func (s *Store) replaceFile(dirRel, name string, data []byte, own fileOwner) (Stamp, error) {
	dir, err := s.openRel(dirRel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return Stamp{}, err
	}
	defer dir.Close()
	dfd := int(dir.Fd())

	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Stamp{}, fmt.Errorf("temp name: %w", err)
	}
	tmp := TempPrefix + name + "." + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(own.mode.Perm()))
	if err != nil {
		return Stamp{}, &os.PathError{Op: "create", Path: s.abs(dirRel + "/" + tmp), Err: err}
	}
	// Lock it at once: from now on CleanupTemps knows it is a live writer's.
	// (Only a cleanup that took it for a dead writer's in between can
	// hold it already.)
	lockErr := flockNB(fd)
	f := os.NewFile(uintptr(fd), s.abs(dirRel+"/"+tmp))
	committed := false
	defer func() {
		if !committed {
			_ = unix.Unlinkat(dfd, tmp, 0)
		}
		f.Close() // drops the flock
	}()
	if lockErr != nil {
		return Stamp{}, &os.PathError{Op: "flock", Path: f.Name(), Err: lockErr}
	}

	if _, err := f.Write(data); err != nil {
		return Stamp{}, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := keepOwner(f, own); err != nil {
		return Stamp{}, err
	}
	if err := f.Sync(); err != nil {
		return Stamp{}, fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return Stamp{}, &os.PathError{Op: "rename", Path: s.abs(dirRel + "/" + name), Err: err}
	}
	committed = true
	if err := s.syncDir(dfd); err != nil {
		s.log.Warn("saved, but the fsync of the directory after the rename failed: the new file may not survive a crash of the machine",
			"file", s.abs(dirRel+"/"+name), "err", &os.PathError{Op: "fsync", Path: dir.Name(), Err: err})
	}
	return fstat(f)
}

// syncDir fsyncs a directory (testHookDirSync instead, in tests).
func (s *Store) syncDir(fd int) error {
	if s.testHookDirSync != nil {
		return s.testHookDirSync(fd)
	}
	return unix.Fsync(fd)
}

// keepOwner gives the temp file the owner, group and mode of the file it
// replaces. chown first: it may clear set-id bits that chmod then restores.
// Each call is skipped when the file has that owner or mode already.
func keepOwner(f *os.File, own fileOwner) error {
	st, err := fstat(f)
	if err != nil {
		return err
	}
	if st.UID != own.uid || st.GID != own.gid {
		if err := unix.Fchown(int(f.Fd()), int(own.uid), int(own.gid)); err != nil {
			return &os.PathError{Op: fmt.Sprintf("chown %d:%d (to keep the replaced file's owner)", own.uid, own.gid), Path: f.Name(), Err: err}
		}
	}
	if st.Mode.Perm() == own.mode.Perm() {
		return nil
	}
	if err := unix.Fchmod(int(f.Fd()), uint32(own.mode.Perm())); err != nil {
		return &os.PathError{Op: "chmod", Path: f.Name(), Err: err}
	}
	return nil
}

// ownerOf is the owner to keep for a file that exists (st) or, when it does
// not, the owner of its directory with mode 0644 — what PBS (running as the
// directory's owner, "backup") would have created.
func ownerOf(st, dir Stamp) fileOwner {
	if !st.IsZero() {
		return fileOwner{st.UID, st.GID, st.Mode.Perm()}
	}
	return fileOwner{dir.UID, dir.GID, 0o644}
}

// removeStaleTemps deletes the temp files in dirRel whose writers are gone,
// by the one rule CleanupTemps applies everywhere (removeDeadTemp: nobody
// holds its flock). Callers hold the manifest lock as well, but a writer
// of another pbsfs with another lock directory, or of a tool of the same
// design, holds a different manifest lock and only its flock tells.
func (s *Store) removeStaleTemps(dirRel string) (int, error) {
	ents, err := s.readDirRel(dirRel)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), TempPrefix) || !e.Type().IsRegular() {
			continue
		}
		ok, err := s.removeDeadTemp(dirRel, e.Name())
		if err != nil {
			return n, err
		}
		if ok {
			s.log.Info("removed temp file left by an interrupted write", "file", s.abs(dirRel+"/"+e.Name()))
			n++
		}
	}
	return n, nil
}

// flockNB takes an exclusive flock on fd without waiting.
func flockNB(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}

// removeDeadTemp removes the temp file dirRel/name if its writer is gone:
// nobody holds a flock on it (see TempPrefix). It reports whether it did;
// a temp file whose writer is alive, or that vanished or was replaced
// meanwhile, stays.
func (s *Store) removeDeadTemp(dirRel, name string) (bool, error) {
	dir, err := s.openRel(dirRel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, err
	}
	defer dir.Close()
	dfd := int(dir.Fd())
	display := s.abs(dirRel + "/" + name)
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "open", Path: display, Err: err}
	}
	defer unix.Close(fd)
	if err := flockNB(fd); err != nil {
		if err == unix.EWOULDBLOCK {
			return false, nil // a live writer's
		}
		return false, &os.PathError{Op: "flock", Path: display, Err: err}
	}
	var held, now unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		return false, &os.PathError{Op: "fstat", Path: display, Err: err}
	}
	if err := unix.Fstatat(dfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil || now.Dev != held.Dev || now.Ino != held.Ino ||
		held.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, nil // renamed into place or replaced meanwhile
	}
	if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
		return false, &os.PathError{Op: "unlink", Path: display, Err: err}
	}
	return true, nil
}

// unlinkRel removes one file (not a directory) in dirRel.
func (s *Store) unlinkRel(dirRel, name string) error {
	dir, err := s.openRel(dirRel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "unlink", Path: s.abs(dirRel + "/" + name), Err: err}
	}
	return nil
}

// removeAllRel removes rel and everything below it without following any
// symlink (a symlink inside is removed, not its target). rel itself must
// exist (ENOENT otherwise: someone else removed it); what vanishes below it
// meanwhile is not an error.
func (s *Store) removeAllRel(rel string) error {
	parent, name := splitRel(rel)
	dir, err := s.openRel(parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return removeAllAt(int(dir.Fd()), name, s.abs(rel), true)
}

func removeAllAt(dfd int, name, display string, top bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT && !top {
			return nil
		}
		return &os.PathError{Op: "stat", Path: display, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
			return &os.PathError{Op: "unlink", Path: display, Err: err}
		}
		return nil
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: display, Err: err}
	}
	d := os.NewFile(uintptr(fd), display)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("read directory %s: %w", display, err)
	}
	for _, n := range names {
		if err := removeAllAt(fd, n, display+"/"+n, false); err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: display, Err: err}
	}
	return nil
}

func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}
