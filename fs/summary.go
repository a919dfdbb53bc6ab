package fs

import (
	"strings"
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
//
// The notes text itself is kept too when it is short (maxSummaryNotes), so
// that opening notes for reading after a lookup needs one stat and no
// decode: reading every notes of a store larger than the datastore's LRU
// would otherwise decode every manifest twice (lookup, open).
type snapMeta struct {
	mu       sync.Mutex
	st       datastore.Stamp // blob the lengths below belong to
	valid    bool
	hasNotes bool // notes holds the text (it is at most maxSummaryNotes long)
	notesLen int32
	jsonLen  int32
	notes    string // the notes text, if hasNotes
}

// maxSummaryNotes bounds the notes text a summary keeps; longer notes are
// taken from the datastore's manifest cache.
const maxSummaryNotes = 4 << 10

// lengths returns the notes' and manifest.json's sizes and the blob's stamp.
func (d *snapDir) lengths() (notesLen, jsonLen int, st datastore.Stamp, err error) {
	store, m := d.fs.store, &d.meta
	st, err = store.ManifestStamp(d.sn)
	if err != nil {
		return 0, 0, st, err
	}
	m.mu.Lock()
	if m.valid && sameFile(m.st, st) {
		defer m.mu.Unlock()
		return int(m.notesLen), int(m.jsonLen), m.st, nil
	}
	m.mu.Unlock()
	man, st, err := store.Manifest(d.sn)
	if err != nil {
		return 0, 0, st, err
	}
	js, jst, err := store.ManifestJSON(d.sn)
	if err != nil {
		return 0, 0, jst, err
	}
	if !sameFile(st, jst) { // replaced in between: report the newer one
		if man, st, err = store.Manifest(d.sn); err != nil {
			return 0, 0, st, err
		}
	}
	notes := man.Notes()
	notesLen, jsonLen = len(notes), len(js)
	m.mu.Lock()
	// Both fit: the datastore refuses manifests over 128 MiB.
	m.st, m.valid, m.notesLen, m.jsonLen = st, true, int32(notesLen), int32(jsonLen)
	m.notes, m.hasNotes = "", notesLen <= maxSummaryNotes
	if m.hasNotes {
		// A copy: the decoded string points into the manifest's whole
		// JSON text, which the summary must not keep alive.
		m.notes = strings.Clone(notes)
	}
	m.mu.Unlock()
	return notesLen, jsonLen, st, nil
}

// notesText returns the committed notes and the blob's stamp: from the
// summary when it holds the text of the current blob (one stat), else from
// the decoded manifest.
func (d *snapDir) notesText() (string, datastore.Stamp, error) {
	store, m := d.fs.store, &d.meta
	st, err := store.ManifestStamp(d.sn)
	if err != nil {
		return "", st, err
	}
	m.mu.Lock()
	if m.valid && m.hasNotes && sameFile(m.st, st) {
		defer m.mu.Unlock()
		return m.notes, m.st, nil
	}
	m.mu.Unlock()
	man, st, err := store.Manifest(d.sn)
	if err != nil {
		return "", st, err
	}
	return man.Notes(), st, nil
}
