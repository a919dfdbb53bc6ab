package datastore

import (
	"errors"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// StatNamespace returns the stamp of a namespace's directory (the datastore
// root for the root namespace).
func (s *Store) StatNamespace(ns NS) (Stamp, error) {
	if err := ns.Validate(); err != nil {
		return Stamp{}, wrap("stat namespace", s.abs(ns.Dir()), ErrInvalid, err)
	}
	return s.statDir("stat namespace", ns.Dir())
}

// StatNamespacesDir returns the stamp of ns's "ns" directory, which holds its
// child namespaces.
func (s *Store) StatNamespacesDir(ns NS) (Stamp, error) {
	if err := ns.Validate(); err != nil {
		return Stamp{}, wrap("stat namespace", s.abs(ns.Dir()), ErrInvalid, err)
	}
	return s.statDir("stat namespace", path.Join(ns.Dir(), "ns"))
}

// StatType returns the stamp of the directory of backup type typ in ns.
func (s *Store) StatType(ns NS, typ string) (Stamp, error) {
	g := Group{NS: ns, Type: typ, ID: "x"}
	if err := g.Validate(); err != nil {
		return Stamp{}, wrap("stat backup type", s.abs(path.Join(ns.Dir(), typ)), ErrInvalid, err)
	}
	return s.statDir("stat backup type", path.Join(ns.Dir(), typ))
}

// StatGroup returns the stamp of a group's directory.
func (s *Store) StatGroup(g Group) (Stamp, error) {
	if err := g.Validate(); err != nil {
		return Stamp{}, wrap("stat group", s.abs(g.Dir()), ErrInvalid, err)
	}
	return s.statDir("stat group", g.Dir())
}

func (s *Store) statDir(op, rel string) (Stamp, error) {
	st, err := s.statRel(rel)
	if err != nil {
		return Stamp{}, wrap(op, s.abs(rel), nil, err)
	}
	if !st.IsDir() {
		return Stamp{}, wrap(op, s.abs(rel), ErrNotFound, errors.New("not a directory"))
	}
	return st, nil
}

// StatSnapshotDir returns the stamp of a snapshot's directory alone: one
// path walk, nothing inside it is looked at. A lookup of the directory
// needs no more (its state matters only for what it lists), and on a cold
// cache stat-ing files inside every snapshot directory would read each
// directory's blocks from disk while `ls -l` of a group only needs the
// group's.
func (s *Store) StatSnapshotDir(sn Snapshot) (Stamp, error) {
	if err := sn.Validate(); err != nil {
		return Stamp{}, wrap("stat snapshot", s.abs(sn.Dir()), ErrInvalid, err)
	}
	return s.statDir("stat snapshot", sn.Dir())
}

// ChangeStamp returns the stamp of the directory at rel (relative to the
// root) with one fstatat, for change detection only: a trailing symlink is
// not followed, but one in an earlier component is, unlike everywhere else
// in this package. Nothing is read or written through it; a caller that
// sees a change goes back to the checked accessors, which refuse symlinks.
// pbsfs's revalidator stats every directory the kernel holds with it, where
// the openat2-based stat costs three syscalls. It neither opens an idle
// store nor keeps it open (ErrUnavailable while idle): the revalidator's
// looking is not a use of the datastore.
func (s *Store) ChangeStamp(rel string) (Stamp, error) {
	if s.bucket != nil { // the bucket's listing, cached for its recheck interval
		return s.statDir("stat", rel)
	}
	if rel == "" {
		rel = "."
	}
	var st unix.Stat_t
	root, err := s.g.acquireIfActive()
	if err != nil {
		return Stamp{}, wrap("stat", s.abs(rel), nil, err)
	}
	defer s.g.releaseQuiet()
	for {
		err := unix.Fstatat(root, rel, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stamp{}, wrap("stat", s.abs(rel), nil, &os.PathError{Op: "stat", Path: s.abs(rel), Err: err})
		}
		break
	}
	stamp := stampOf(&st)
	if !stamp.IsDir() {
		return Stamp{}, wrap("stat", s.abs(rel), ErrNotFound, errors.New("not a directory"))
	}
	return stamp, nil
}

// ManifestName is the manifest's file name inside a snapshot directory.
const ManifestName = "index.json.blob"

// ProtectedName is the protection marker's file name.
const ProtectedName = ".protected"
