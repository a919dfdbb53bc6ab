package datastore

import (
	"errors"
	"io/fs"
	"path"
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

// State classifies a snapshot.
type State int

const (
	// Finished: index.json.blob exists (whether it decodes is found out when
	// it is read).
	Finished State = iota
	// Unfinished: no index.json.blob yet — a backup is running or failed.
	Unfinished
	// Corrupt: index.json.blob exists but is not a regular file, or does not
	// decode.
	Corrupt
)

func (st State) String() string {
	switch st {
	case Finished:
		return "finished"
	case Unfinished:
		return "unfinished"
	case Corrupt:
		return "corrupt"
	}
	return "unknown"
}

// SnapshotInfo describes a snapshot without decoding its manifest.
type SnapshotInfo struct {
	Dir       Stamp // the snapshot directory
	Manifest  Stamp // index.json.blob; zero when unfinished
	State     State
	Protected bool // .protected exists
}

// ManifestName is the manifest's file name inside a snapshot directory.
const ManifestName = "index.json.blob"

// ProtectedName is the protection marker's file name.
const ProtectedName = ".protected"

// StatSnapshot classifies a snapshot by stat-ing its directory, manifest and
// protection marker. It does not read the manifest.
func (s *Store) StatSnapshot(sn Snapshot) (SnapshotInfo, error) {
	if err := sn.Validate(); err != nil {
		return SnapshotInfo{}, wrap("stat snapshot", s.abs(sn.Dir()), ErrInvalid, err)
	}
	var info SnapshotInfo
	var err error
	if info.Dir, err = s.statDir("stat snapshot", sn.Dir()); err != nil {
		return SnapshotInfo{}, err
	}
	mrel := path.Join(sn.Dir(), ManifestName)
	info.Manifest, err = s.statRel(mrel)
	switch {
	case err == nil && info.Manifest.IsRegular():
		info.State = Finished
	case err == nil:
		info.State = Corrupt
	case errors.Is(err, fs.ErrNotExist):
		info.State, info.Manifest = Unfinished, Stamp{}
	default:
		info.State = Corrupt
	}
	info.Protected, err = s.exists(path.Join(sn.Dir(), ProtectedName))
	if err != nil {
		return SnapshotInfo{}, wrap("stat snapshot", s.abs(sn.Dir()), nil, err)
	}
	return info, nil
}
