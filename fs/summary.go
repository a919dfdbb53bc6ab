package fs

import (
	"strings"
	"sync"
	"time"

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
	checked  int64           // when st was last found current (monotonic ns, see now)
	valid    bool
	hasNotes bool // notes holds the text (it is at most maxSummaryNotes long)
	notesLen int32
	jsonLen  int32
	notes    string // the notes text, if hasNotes
}

// maxSummaryNotes bounds the notes text a summary keeps; longer notes are
// taken from the datastore's manifest cache.
const maxSummaryNotes = 4 << 10

// recheckWindow is how long a summary found current is trusted without
// another stat. A walk asks for it several times within a millisecond —
// listing the directory, then looking up manifest.json and notes — and
// the kernel keeps what it is told for much longer anyway (revalidate.go).
const recheckWindow = 100 * time.Millisecond

// now is a monotonic clock reading in nanoseconds.
func now() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()

// fresh returns the summary if it was found current within recheckWindow;
// the caller holds m.mu.
func (m *snapMeta) fresh(t int64) bool {
	return m.valid && t-m.checked < int64(recheckWindow)
}

// lengths returns the notes' and manifest.json's sizes and the blob's stamp:
// from the summary when it was checked moments ago, or when one stat shows
// the blob unchanged; else from one load of the manifest.
func (d *snapDir) lengths() (notesLen, jsonLen int, st datastore.Stamp, err error) {
	store, m := d.fs.store, &d.meta
	t := now()
	m.mu.Lock()
	if m.fresh(t) {
		defer m.mu.Unlock()
		return int(m.notesLen), int(m.jsonLen), m.st, nil
	}
	valid := m.valid
	m.mu.Unlock()
	if valid {
		if st, err = store.ManifestStamp(d.sn); err != nil {
			return 0, 0, st, err
		}
		m.mu.Lock()
		if m.valid && m.st.ID() == st.ID() {
			defer m.mu.Unlock()
			m.checked = t
			return int(m.notesLen), int(m.jsonLen), m.st, nil
		}
		m.mu.Unlock()
	}
	man, js, st, err := store.ManifestAndJSON(d.sn)
	if err != nil {
		return 0, 0, st, err
	}
	notes := man.Notes()
	notesLen, jsonLen = len(notes), len(js)
	m.mu.Lock()
	// Both fit: the datastore refuses manifests over 128 MiB.
	m.st, m.valid, m.checked, m.notesLen, m.jsonLen = st, true, t, int32(notesLen), int32(jsonLen)
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
// summary when it holds the text and one stat shows it current (never on
// the strength of recheckWindow alone: what an open reads must be what is
// stored), else from the decoded manifest.
func (d *snapDir) notesText() (string, datastore.Stamp, error) {
	store, m := d.fs.store, &d.meta
	t := now()
	st, err := store.ManifestStamp(d.sn)
	if err != nil {
		return "", st, err
	}
	m.mu.Lock()
	if m.valid && m.hasNotes && m.st.ID() == st.ID() {
		defer m.mu.Unlock()
		m.checked = t
		return m.notes, m.st, nil
	}
	m.mu.Unlock()
	man, st, err := store.Manifest(d.sn)
	if err != nil {
		return "", st, err
	}
	return man.Notes(), st, nil
}

// forget drops the summary (after a commit through the mount, which the
// recheck window must not hide).
func (m *snapMeta) forget() {
	m.mu.Lock()
	m.valid = false
	m.mu.Unlock()
}
