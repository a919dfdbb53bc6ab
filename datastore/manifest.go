package datastore

import (
	"errors"
	"path"

	"pbsfs/manifest"
)

// maxManifestFile bounds how much of an index.json.blob is read: the largest
// valid blob plus the encrypted header.
const maxManifestFile = manifest.MaxBlobSize + 44

type cachedManifest struct {
	m      *manifest.Manifest
	pretty []byte // MarshalPretty()+"\n" (see manifestText), computed once
}

// Manifest returns the decoded manifest of a finished snapshot and the stamp
// of the blob it came from. Decoding happens once per blob identity; the
// returned manifest is shared and must not be modified.
//
// Errors: ErrUnfinished (no manifest), ErrCorrupt (does not decode; the
// message names the file and the reason), ErrNotFound.
func (s *Store) Manifest(sn Snapshot) (*manifest.Manifest, Stamp, error) {
	c, st, err := s.loadManifest(sn)
	if err != nil {
		return nil, st, err
	}
	return c.m, st, nil
}

// ManifestJSON returns the manifest as pretty JSON ending in a newline (what
// pbsfs shows as manifest.json), computed once per blob identity.
func (s *Store) ManifestJSON(sn Snapshot) ([]byte, Stamp, error) {
	c, st, err := s.loadManifest(sn)
	if err != nil {
		return nil, st, err
	}
	return c.pretty, st, nil
}

// ManifestAndJSON returns both Manifest's and ManifestJSON's results from
// one load (one stat when the blob is cached).
func (s *Store) ManifestAndJSON(sn Snapshot) (*manifest.Manifest, []byte, Stamp, error) {
	c, st, err := s.loadManifest(sn)
	if err != nil {
		return nil, nil, st, err
	}
	return c.m, c.pretty, st, nil
}

// ManifestStamp stats a snapshot's manifest without reading it; it returns
// ErrUnfinished when there is none.
func (s *Store) ManifestStamp(sn Snapshot) (Stamp, error) {
	if err := sn.Validate(); err != nil {
		return Stamp{}, wrap("stat manifest", s.abs(sn.Dir()), ErrInvalid, err)
	}
	rel := path.Join(sn.Dir(), ManifestName)
	st, err := s.statRel(rel)
	if err != nil {
		return Stamp{}, s.manifestErr("stat manifest", sn, rel, err)
	}
	if !st.IsRegular() {
		return st, wrap("stat manifest", s.abs(rel), ErrCorrupt, errNotRegular)
	}
	return st, nil
}

func (s *Store) loadManifest(sn Snapshot) (*cachedManifest, Stamp, error) {
	st, err := s.ManifestStamp(sn)
	if err != nil {
		return nil, st, err
	}
	if c, ok := s.cache.Get(st.ID()); ok {
		return c, st, nil
	}
	// A manifest that did not decode is not read again (up to 128 MiB for
	// each stat) until it changes: same identity, same error.
	if err, ok := s.corrupt.Get(st.ID()); ok {
		return nil, st, err
	}
	rel := path.Join(sn.Dir(), ManifestName)
	raw, st, err := s.readRel(rel, maxManifestFile)
	if err != nil {
		return nil, st, s.manifestErr("read manifest", sn, rel, err)
	}
	m, err := manifest.LoadWith(raw, budgetHeap{s.mem})
	if errors.Is(err, manifest.ErrNoMemory) {
		err = wrap("read manifest", s.abs(rel), nil, err)
		s.log.Error("cannot decode manifest now", "file", s.abs(rel), "err", err)
		return nil, st, err
	}
	if err != nil {
		// Whatever the reason (bad magic, CRC, zstd, JSON, schema, an
		// oversized payload, an encrypted manifest), the file is unusable.
		err = wrap("read manifest", s.abs(rel), ErrCorrupt, err)
		s.log.Error("cannot decode manifest", "file", s.abs(rel), "err", err)
		s.corrupt.Add(st.ID(), err)
		return nil, st, err
	}
	c := s.remember(st, m)
	return c, st, nil
}

// remember caches a decoded manifest under the identity of the blob it
// was read from (or written as).
func (s *Store) remember(st Stamp, m *manifest.Manifest) *cachedManifest {
	c := &cachedManifest{m: m, pretty: s.manifestText(m)}
	s.cache.Add(st.ID(), c)
	return c
}

// manifestErr turns a failure to open a snapshot's manifest into
// ErrUnfinished when the snapshot directory exists but the manifest does not.
func (s *Store) manifestErr(op string, sn Snapshot, rel string, err error) error {
	if errors.Is(classify(err), ErrNotFound) && !errors.Is(err, errLoop) {
		if _, derr := s.statDir(op, sn.Dir()); derr != nil {
			return derr
		}
		return wrap(op, s.abs(rel), ErrUnfinished, err)
	}
	if errors.Is(err, errLoop) {
		return wrap(op, s.abs(rel), ErrCorrupt, errors.New("is a symlink; not followed"))
	}
	return wrap(op, s.abs(rel), nil, err)
}
