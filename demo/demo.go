package demo

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/pxar/encoder"
)

// Summary describes what Sample or Large wrote.
type Summary struct {
	Namespaces int // namespaces including the root namespace
	Groups     int
	Snapshots  int // snapshot directories, unfinished ones included
	// Notes lists example paths, relative to the datastore, of notes that
	// were written: "<snapshot dir>/notes" for snapshot notes (kept in the
	// manifest) and "<group dir>/notes" for group notes.
	Notes []string
}

// LargeOptions sizes the store Large writes. Zero values select the defaults
// given per field; negative values are an error.
type LargeOptions struct {
	Namespaces        int   // namespaces besides the root namespace (default 0)
	Groups            int   // groups in total, spread over all namespaces (default 100)
	SnapshotsPerGroup int   // snapshots in every group (default 100)
	Seed              int64 // varies ids, sizes, notes and checksums
}

// Snapshots of the sample store with a special role, as datastore-relative
// directories (datastore.Snapshot.Dir form).
const (
	// SampleProtected carries a .protected marker.
	SampleProtected = "vm/100/2024-06-02T02:00:03Z"
	// SampleUnfinished is a backup in progress: no index.json.blob yet.
	SampleUnfinished = "vm/100/2024-06-04T02:00:02Z"
	// SampleEncrypted has a signed manifest whose files have crypt-mode
	// "encrypt" (key: DemoKey).
	SampleEncrypted = "vm/101/2024-06-01T03:15:00Z"
	// SampleVM is a plain VM backup: qemu-server.conf, an 8 GiB sparse
	// drive-scsi0.img and client.log.
	SampleVM = "vm/100/2024-06-01T02:00:04Z"
	// SampleCTFirst and SampleCTSecond are two backups of one container
	// (pct.conf, root.pxar, catalog.pcat1) whose configs differ.
	SampleCTFirst  = "ct/200/2024-06-01T01:30:00Z"
	SampleCTSecond = "ct/200/2024-06-02T01:30:00Z"
	// SampleSplit is a container backup with a split archive
	// (pct.conf, root.mpxar, root.ppxar; no catalog).
	SampleSplit = "ns/prod/ct/310/2024-06-01T21:00:00Z"
	// SampleEncryptedArchive is a host backup whose split archive is
	// encrypted (key: DemoKey).
	SampleEncryptedArchive = "ns/prod/host/web01.example.com/2024-06-02T04:45:10Z"
)

// SampleArchive describes the file archive of a container or host
// snapshot of the sample store.
type SampleArchive struct {
	// Root is the archived tree (every entry kind, xattrs, ACLs; see the
	// package documentation); file contents are in Node.Data.
	Root *encoder.Node
	// Split: root.mpxar.didx + root.ppxar.didx; otherwise root.pxar.didx
	// and catalog.pcat1.didx.
	Split     bool
	Encrypted bool
}

// SampleArchiveOf returns the file archive Sample writes into the snapshot
// (a datastore-relative directory as in the Sample* constants); false for
// snapshots without one.
func SampleArchiveOf(snapshot string) (SampleArchive, bool) {
	for _, gs := range sampleGroups() {
		if gs.typ != "ct" && gs.typ != "host" {
			continue
		}
		g := datastore.Group{NS: gs.ns, Type: gs.typ, ID: gs.id}
		for idx, ss := range gs.snaps {
			if (datastore.Snapshot{Group: g, Time: ss.time}).Dir() != snapshot || ss.unfinished {
				continue
			}
			t, err := time.Parse(time.RFC3339, ss.time)
			if err != nil {
				return SampleArchive{}, false
			}
			return SampleArchive{Root: rootFS(gs.name, idx, t.Unix()), Split: ss.split, Encrypted: ss.encrypted}, true
		}
	}
	return SampleArchive{}, false
}

// demoKeySeed derives the fixed demo encryption key; never use it for real data.
const demoKeySeed = "pbsfs demo encryption key - do not use for real backups"

// DemoKey returns the fixed 32-byte AES-256 key the sample store's encrypted
// files and chunks were written with (a fresh copy on every call).
func DemoKey() []byte {
	k := sha256.Sum256([]byte(demoKeySeed))
	return k[:]
}

// snapshotTime formats a backup time like PBS names snapshot directories.
func snapshotTime(epoch int64) string {
	return time.Unix(epoch, 0).UTC().Format("2006-01-02T15:04:05Z")
}

// prepareDir makes sure dir is absent or an empty directory.
func prepareDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo: check target directory: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("demo: check target directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("demo: %q exists and is not a directory", dir)
	}
	if _, err := f.Readdirnames(1); err != io.EOF {
		if err != nil {
			return fmt.Errorf("demo: check target directory %q: %w", dir, err)
		}
		return fmt.Errorf("demo: target directory %q is not empty", dir)
	}
	return nil
}

// createStore creates an empty datastore at dir and opens it for writing.
// Locks (group notes take the group lock) go to a private temporary lock
// directory: nobody else knows the new store yet. The returned cleanup
// closes the store and removes that directory.
func createStore(dir string, co datastore.CreateOptions) (*datastore.Store, func(), error) {
	if err := prepareDir(dir); err != nil {
		return nil, nil, err
	}
	if err := datastore.Create(dir, co); err != nil {
		return nil, nil, fmt.Errorf("demo: create datastore: %w", err)
	}
	lockDir, err := os.MkdirTemp("", "pbsfs-demo-locks-")
	if err != nil {
		return nil, nil, fmt.Errorf("demo: lock directory: %w", err)
	}
	st, err := datastore.Open(dir, datastore.Options{
		Lock: lock.Config{Scheme: lock.Run, Dir: lockDir, Store: "demo", UID: -1, GID: -1},
	})
	if err != nil {
		_ = os.RemoveAll(lockDir)
		return nil, nil, fmt.Errorf("demo: open new datastore: %w", err)
	}
	cleanup := func() {
		_ = st.Close()
		_ = os.RemoveAll(lockDir)
	}
	return st, cleanup, nil
}
