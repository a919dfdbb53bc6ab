package datastore

import (
	"context"
	"path"
	"strings"
	"time"

	"pbsfs/lock"
)

// CleanupTemps walks the whole datastore and removes temp files that a pbsfs
// process killed mid-write left in snapshot and group directories (see
// TempPrefix). Each snapshot directory is cleaned under its manifest lock,
// which every writer of the manifest holds while its temp file exists, so a
// live writer's file is never touched; a snapshot whose lock is busy is
// skipped. Group directories (group notes) have no such lock in every
// scheme; there a temp file is removed when no writer holds the flock every
// writer keeps on its temp file, and it is at least minAge old. minAge only
// has to cover the instant between a writer creating its temp file and
// locking it (0 is fine: losing that race costs the other writer an error,
// not data). It returns how many files it removed.
func (s *Store) CleanupTemps(ctx context.Context, minAge time.Duration) (int, error) {
	if s.readOnly {
		return 0, nil
	}
	done, err := s.beginWrite(ctx, "clean up temp files", s.path)
	if err != nil {
		return 0, err
	}
	defer done()
	removed := 0
	var walkNS func(ns NS) error
	walkNS = func(ns NS) error {
		types, err := s.ListTypes(ns)
		if err != nil {
			return err
		}
		for _, typ := range types {
			ids, err := s.ListGroups(ns, typ)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := ctx.Err(); err != nil {
					return err
				}
				removed += s.cleanGroup(ctx, Group{NS: ns, Type: typ, ID: id}, minAge)
			}
		}
		children, err := s.ListNamespaces(ns)
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := walkNS(ns.Child(c)); err != nil {
				return err
			}
		}
		return nil
	}
	err = walkNS(nil)
	return removed, err
}

func (s *Store) cleanGroup(ctx context.Context, g Group, minAge time.Duration) int {
	removed := 0
	ents, err := s.readDirRel(g.Dir())
	if err != nil {
		return 0
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, TempPrefix) && e.Type().IsRegular():
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < minAge {
				continue
			}
			ok, err := s.removeDeadTemp(g.Dir(), name)
			if err != nil {
				s.log.Warn("cannot clean up temp file", "file", s.abs(path.Join(g.Dir(), name)), "err", err)
			}
			if ok {
				s.log.Info("removed temp file left by an interrupted write", "file", s.abs(path.Join(g.Dir(), name)))
				removed++
			}
		case ValidBackupTime(name) && e.IsDir():
			removed += s.cleanSnapshot(ctx, Snapshot{Group: g, Time: name})
		}
	}
	return removed
}

// lockTempMinAge is how old a lock file's temporary file (lock.TempPrefix)
// must be before the cleanup removes it: its creator renames it into place
// microseconds after creating it, so one this old was left by a crash.
const lockTempMinAge = time.Minute

func (s *Store) cleanSnapshot(ctx context.Context, sn Snapshot) int {
	ents, err := s.readDirRel(sn.Dir())
	if err != nil {
		return 0
	}
	found, removed := false, 0
	for _, e := range ents {
		switch name := e.Name(); {
		case strings.HasPrefix(name, TempPrefix):
			found = true
		case strings.HasPrefix(name, lock.TempPrefix) && e.Type().IsRegular():
			// Left by a crash while creating the legacy scheme's
			// .index.json.lck; nothing refers to it.
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < lockTempMinAge {
				continue
			}
			if err := s.unlinkRel(sn.Dir(), name); err != nil {
				s.log.Warn("cannot clean up lock temp file", "file", s.abs(path.Join(sn.Dir(), name)), "err", err)
				continue
			}
			s.log.Info("removed lock temp file left by an interrupted lock", "file", s.abs(path.Join(sn.Dir(), name)))
			removed++
		}
	}
	if !found {
		return removed
	}
	lk, err := s.locker.LockManifest(ctx, sn.lockPath(), 0)
	if err != nil {
		s.log.Debug("manifest lock busy; temp files left for later", "snapshot", s.abs(sn.Dir()), "err", err)
		return 0
	}
	defer lk.Unlock()
	n, err := s.removeStaleTemps(sn.Dir())
	if err != nil {
		s.log.Warn("cannot clean up temp files", "dir", s.abs(sn.Dir()), "err", err)
	}
	return removed + n
}
