package datastore

import (
	"errors"
	"os"
	"path"
	"sort"

	"pbsfs/manifest"
)

// WriteSnapshot creates a finished snapshot: the directory, each archive
// file, then the manifest last (its presence marks the snapshot finished, as
// with PBS). The group must exist. It is a writer for demos and tests; PBS
// itself creates snapshots through its backup protocol.
func (s *Store) WriteSnapshot(sn Snapshot, m *manifest.Manifest, files map[string][]byte) error {
	const op = "write snapshot"
	if err := sn.Validate(); err != nil {
		return wrap(op, s.abs(sn.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(sn.Dir()))
	}
	if err := s.MakeSnapshotDir(sn); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if n == ManifestName || n == "" || n == "." || n == ".." || path.Base(n) != n {
			return wrap(op, s.abs(sn.Dir()), ErrInvalid, errors.New("bad archive file name "+n))
		}
		names = append(names, n)
	}
	sort.Strings(names)
	own := fileOwner{uint32(os.Getuid()), uint32(os.Getgid()), 0o644}
	for _, n := range names {
		if _, err := s.replaceFile(sn.Dir(), n, files[n], own); err != nil {
			return wrap(op, s.abs(path.Join(sn.Dir(), n)), nil, err)
		}
	}
	if m == nil {
		return nil // an unfinished snapshot
	}
	raw, err := m.EncodeBlob()
	if err != nil {
		return wrap(op, s.abs(path.Join(sn.Dir(), ManifestName)), nil, err)
	}
	if _, err := s.replaceFile(sn.Dir(), ManifestName, raw, own); err != nil {
		return wrap(op, s.abs(path.Join(sn.Dir(), ManifestName)), nil, err)
	}
	return nil
}

// MakeSnapshotDir creates an empty snapshot directory (an unfinished
// snapshot) in an existing group.
func (s *Store) MakeSnapshotDir(sn Snapshot) error {
	const op = "write snapshot"
	if err := sn.Validate(); err != nil {
		return wrap(op, s.abs(sn.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(sn.Dir()))
	}
	if _, err := s.StatGroup(sn.Group); err != nil {
		return err
	}
	if err := os.Mkdir(s.abs(sn.Dir()), 0o755); err != nil {
		return wrap(op, s.abs(sn.Dir()), nil, err)
	}
	return nil
}
