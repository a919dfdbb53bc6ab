package datastore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"golang.org/x/sys/unix"

	"pbsfs/lock"
)

// RemoveSnapshot is PBS's BackupDir::destroy (without force):
//
//  1. the snapshot lock, exclusive and non-blocking (ErrInUse while a
//     backup, restore, verify or sync holds it);
//  2. the manifest lock (waits up to lock.ManifestTimeout; ErrLockUnavailable,
//     or ErrInterrupted when ctx ends first);
//  3. under both locks, check again that the snapshot is there (ErrNotFound
//     if another process removed it meanwhile), then refuse if .protected
//     exists (ErrProtected);
//  4. remove the snapshot directory;
//  5. remove the manifest and snapshot lock files (still held; PBS's
//     double-stat protects late acquirers);
//  6. in the run scheme only: if the group lock can be had at once and the
//     group has no snapshot directories left, remove the group (notes,
//     owner, directory, group lock file), as PBS 3.3.5+ does.
//
// Unfinished snapshots (no manifest) are removed the same way: PBS only
// refuses them while their backup still holds the snapshot lock.
func (s *Store) RemoveSnapshot(ctx context.Context, sn Snapshot) error {
	const op = "remove snapshot"
	if err := sn.Validate(); err != nil {
		return wrap(op, s.abs(sn.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(sn.Dir()))
	}
	done, err := s.beginWrite(ctx, op, s.abs(sn.Dir()))
	if err != nil {
		return err
	}
	defer done()
	if _, err := s.statDir(op, sn.Dir()); err != nil {
		return err
	}
	lp := sn.lockPath()
	snapLock, err := s.locker.LockSnapshot(lp, false)
	if err != nil {
		if errors.Is(err, lock.ErrWouldBlock) {
			err = fmt.Errorf("snapshot is in use (a backup, restore, verify or sync is running): %w", err)
		}
		return wrap(op, s.abs(sn.Dir()), nil, lockErr(err))
	}
	defer snapLock.Unlock()
	manLock, err := s.locker.LockManifest(ctx, lp, lock.ManifestTimeout)
	if err != nil {
		return wrap(op, s.abs(sn.Dir()), nil, lockErr(err))
	}
	defer manLock.Unlock()
	if err := ctx.Err(); err != nil { // interrupted just as the lock came
		return wrap(op, s.abs(sn.Dir()), ErrInterrupted, err)
	}

	// This look under the locks is also the second check that the snapshot
	// is there: another process may have forgotten it while we waited, and
	// that rmdir is not ours to report as done (ENOENT, as removeAllRel
	// gives if it vanishes after this).
	protected, err := s.exists(path.Join(sn.Dir(), ProtectedName))
	if err != nil {
		return wrap(op, s.abs(sn.Dir()), nil, err)
	}
	if protected {
		return wrap(op, s.abs(sn.Dir()), ErrProtected, nil)
	}
	if err := s.removeAllRel(sn.Dir()); err != nil {
		return wrap(op, s.abs(sn.Dir()), nil, fmt.Errorf("removing backup snapshot failed: %w", err))
	}
	s.locker.RemoveSnapshotLockFiles(lp)
	s.log.Info("removed snapshot", "snapshot", s.abs(sn.Dir()))

	if s.locker.RemovesEmptyGroups() {
		s.removeGroupIfEmpty(sn.Group)
	}
	return nil
}

// removeGroupIfEmpty is step 6 of RemoveSnapshot: best effort, logged.
func (s *Store) removeGroupIfEmpty(g Group) {
	lk, err := s.locker.LockGroup(g.lockPath())
	if err != nil {
		s.log.Debug("group lock busy; leaving the group in place", "group", s.abs(g.Dir()), "err", err)
		return
	}
	defer lk.Unlock()
	if err := s.removeGroupDir(g); err != nil && !errors.Is(err, ErrNotEmpty) {
		s.log.Warn("cannot remove emptied group", "group", s.abs(g.Dir()), "err", err)
	}
}

// RemoveGroup removes a group that has no snapshot directories left, the way
// PBS removes an emptied group: under the group lock (ErrInUse while a backup
// of the group runs) remove notes and owner, then the directory (ErrNotEmpty
// if snapshots or other files remain), then the group lock file.
func (s *Store) RemoveGroup(g Group) error {
	const op = "remove group"
	if err := g.Validate(); err != nil {
		return wrap(op, s.abs(g.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(g.Dir()))
	}
	done, err := s.beginWrite(context.Background(), op, s.abs(g.Dir()))
	if err != nil {
		return err
	}
	defer done()
	if _, err := s.statDir(op, g.Dir()); err != nil {
		return err
	}
	lk, err := s.locker.LockGroup(g.lockPath())
	if err != nil {
		if errors.Is(err, lock.ErrWouldBlock) {
			err = fmt.Errorf("group is in use (a backup may be running): %w", err)
		}
		return wrap(op, s.abs(g.Dir()), nil, lockErr(err))
	}
	defer lk.Unlock()
	return s.removeGroupDir(g)
}

// removeGroupDir is PBS's remove_group_dir; the caller holds the group lock.
func (s *Store) removeGroupDir(g Group) error {
	const op = "remove group"
	snaps, err := s.ListSnapshots(g)
	if err != nil {
		return err
	}
	if len(snaps) > 0 {
		return wrap(op, s.abs(g.Dir()), ErrNotEmpty, fmt.Errorf("group still has %d snapshot(s)", len(snaps)))
	}
	// Refuse before deleting notes/owner if anything else is in the way.
	ents, err := s.readDirRel(g.Dir())
	if err != nil {
		return wrap(op, s.abs(g.Dir()), nil, err)
	}
	for _, e := range ents {
		if n := e.Name(); n != GroupNotesName && n != OwnerName {
			return wrap(op, s.abs(g.Dir()), ErrNotEmpty, fmt.Errorf("group directory holds %q", n))
		}
	}
	for _, name := range []string{GroupNotesName, OwnerName} {
		if err := s.unlinkRel(g.Dir(), name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(op, s.abs(path.Join(g.Dir(), name)), nil, err)
		}
	}
	parent, name := splitRel(g.Dir())
	dir, err := s.openRel(parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return wrap(op, s.abs(g.Dir()), nil, err)
	}
	defer dir.Close()
	if err := unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR); err != nil {
		if err == unix.ENOTEMPTY || err == unix.EEXIST {
			return wrap(op, s.abs(g.Dir()), ErrNotEmpty, err)
		}
		return wrap(op, s.abs(g.Dir()), nil, err)
	}
	s.locker.RemoveGroupLockFile(g.lockPath())
	s.log.Info("removed group", "group", s.abs(g.Dir()))
	return nil
}
