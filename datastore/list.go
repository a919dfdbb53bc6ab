package datastore

import (
	"errors"
	"path"
	"slices"
)

// ListNamespaces returns the names of ns's direct child namespaces, sorted.
// A namespace without an ns/ directory has none.
func (s *Store) ListNamespaces(ns NS) ([]string, error) {
	if err := ns.Validate(); err != nil {
		return nil, wrap("list namespaces", s.abs(ns.Dir()), ErrInvalid, err)
	}
	if len(ns) >= MaxNamespaceDepth {
		return nil, nil
	}
	dir := path.Join(ns.Dir(), "ns")
	return s.listDirs("list namespaces", dir, ValidSafeID, true)
}

// ListTypes returns the backup types (vm, ct, host) that have a directory in
// namespace ns, sorted.
func (s *Store) ListTypes(ns NS) ([]string, error) {
	if err := ns.Validate(); err != nil {
		return nil, wrap("list backup types", s.abs(ns.Dir()), ErrInvalid, err)
	}
	return s.listDirs("list backup types", ns.Dir(), ValidBackupType, false)
}

// ListGroups returns the ids of the groups of type typ in namespace ns, sorted.
func (s *Store) ListGroups(ns NS, typ string) ([]string, error) {
	g := Group{NS: ns, Type: typ, ID: "x"}
	if err := g.Validate(); err != nil {
		return nil, wrap("list groups", s.abs(path.Join(ns.Dir(), typ)), ErrInvalid, err)
	}
	return s.listDirs("list groups", path.Join(ns.Dir(), typ), ValidBackupID, false)
}

// ListSnapshots returns the snapshot directory names of group g, sorted
// (which is chronological). Finished and unfinished snapshots alike.
func (s *Store) ListSnapshots(g Group) ([]string, error) {
	if err := g.Validate(); err != nil {
		return nil, wrap("list snapshots", s.abs(g.Dir()), ErrInvalid, err)
	}
	return s.listDirs("list snapshots", g.Dir(), ValidBackupTime, false)
}

// listDirs reads one directory and keeps the real subdirectories whose names
// pass valid. A missing directory is an empty list when missingOK.
func (s *Store) listDirs(op, dir string, valid func(string) bool, missingOK bool) ([]string, error) {
	ents, err := s.back.readDir(dir)
	if err != nil {
		err = wrap(op, s.abs(dir), nil, err)
		if missingOK && errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		name := e.name
		if !valid(name) {
			if name[0] != '.' {
				s.log.Debug("skipping entry with a name PBS would not use", "dir", s.abs(dir), "name", name)
			}
			continue
		}
		if !e.isDir {
			s.log.Debug("skipping entry that is not a directory", "dir", s.abs(dir), "name", name)
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}
