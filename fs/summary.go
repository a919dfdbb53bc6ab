package fs

import (
	"sync"

	"pbsfs/datastore"
)

// snapMeta is what the attributes of a snapshot's notes and manifest.json
// need from its manifest — the length of the notes and of the pretty JSON —
// cached under the identity of the blob they were computed from. A stat
// tells whether the cache still holds; only a changed (or first seen)
// manifest is decoded, once for both files. Without it `ls -l` of a large
// store decodes every manifest several times, since the datastore's LRU is
// smaller than the store.
type snapMeta struct {
	store *datastore.Store
	sn    datastore.Snapshot

	mu       sync.Mutex
	st       datastore.Stamp // blob the lengths below belong to
	valid    bool
	notesLen int
	jsonLen  int
}

// lengths returns the notes' and manifest.json's sizes and the blob's stamp.
func (m *snapMeta) lengths() (notesLen, jsonLen int, st datastore.Stamp, err error) {
	st, err = m.store.ManifestStamp(m.sn)
	if err != nil {
		return 0, 0, st, err
	}
	m.mu.Lock()
	if m.valid && sameFile(m.st, st) {
		defer m.mu.Unlock()
		return m.notesLen, m.jsonLen, m.st, nil
	}
	m.mu.Unlock()
	man, st, err := m.store.Manifest(m.sn)
	if err != nil {
		return 0, 0, st, err
	}
	js, jst, err := m.store.ManifestJSON(m.sn)
	if err != nil {
		return 0, 0, jst, err
	}
	if !sameFile(st, jst) { // replaced in between: report the newer one
		if man, st, err = m.store.Manifest(m.sn); err != nil {
			return 0, 0, st, err
		}
	}
	notesLen, jsonLen = len(man.Notes()), len(js)
	m.mu.Lock()
	m.st, m.valid, m.notesLen, m.jsonLen = st, true, notesLen, jsonLen
	m.mu.Unlock()
	return notesLen, jsonLen, st, nil
}
