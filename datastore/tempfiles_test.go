package datastore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCleanupGroupTemps: in group directories (group notes have no lock
// every scheme takes), CleanupTemps removes the temp files of dead writers
// at once, whatever their age, but never one a live writer holds its flock
// on, nor one younger than minAge, nor a file that is not pbsfs's.
func TestCleanupGroupTemps(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(nil, "vm", "100", testTime)
			addSnapshot(t, s, sn, "x")
			gdir := filepath.Join(s.Path(), sn.Group.Dir())

			dead := filepath.Join(gdir, TempPrefix+"notes.dead")
			must(t, os.WriteFile(dead, []byte("half-written group no"), 0o600))
			live := filepath.Join(gdir, TempPrefix+"notes.live")
			must(t, os.WriteFile(live, []byte("being written"), 0o600))
			f, err := os.Open(live)
			must(t, err)
			defer f.Close()
			must(t, unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)) // as replaceFile does
			pbs := filepath.Join(gdir, "notes.tmp_Ab12Cd")              // PBS's own temp file
			must(t, os.WriteFile(pbs, []byte("pbs"), 0o644))

			// Too young for minAge: everything stays.
			n, err := s.CleanupTemps(t.Context(), time.Hour)
			must(t, err)
			if n != 0 {
				t.Errorf("minAge 1h: removed %d files, want 0", n)
			}
			n, err = s.CleanupTemps(t.Context(), 0)
			must(t, err)
			if n != 1 {
				t.Errorf("removed %d files, want 1", n)
			}
			if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dead writer's temp file still there: %v", err)
			}
			for _, p := range []string{live, pbs} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s removed: %v", filepath.Base(p), err)
				}
			}
			// Once its writer is gone, the other one goes too.
			f.Close()
			n, err = s.CleanupTemps(t.Context(), 0)
			must(t, err)
			if n != 1 {
				t.Errorf("after the writer died: removed %d files, want 1", n)
			}
			if _, err := os.Stat(live); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temp file still there after its writer died: %v", err)
			}
		})
	}
}

// TestCleanupSnapshotTemps: in a snapshot directory, temp files are left
// alone while another process holds the manifest lock, and a temp file whose
// writer is alive (another process holds its flock: a pbsfs with another
// lock directory, whose manifest lock we cannot see) is never removed, by
// the cleanup or by a manifest update, while a dead writer's is.
func TestCleanupSnapshotTemps(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(nil, "vm", "100", testTime)
			addSnapshot(t, s, sn, "x")
			dir := filepath.Join(s.Path(), sn.Dir())
			dead := filepath.Join(dir, TempPrefix+ManifestName+".dead")
			live := filepath.Join(dir, TempPrefix+ManifestName+".live")
			must(t, os.WriteFile(dead, []byte("half"), 0o600))
			must(t, os.WriteFile(live, []byte("being written"), 0o600))
			releaseWriter := holdFlock(t, live)

			releaseManifest := holdLock(t, s, sn, "manifest")
			n, err := s.CleanupTemps(t.Context(), 0)
			must(t, err)
			if n != 0 {
				t.Errorf("manifest lock held elsewhere: removed %d files, want 0", n)
			}
			for _, p := range []string{dead, live} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s removed while another process held the manifest lock: %v", filepath.Base(p), err)
				}
			}
			releaseManifest()

			n, err = s.CleanupTemps(t.Context(), 0)
			must(t, err)
			if n != 1 {
				t.Errorf("removed %d files, want 1", n)
			}
			if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dead writer's temp file still there: %v", err)
			}
			must(t, os.WriteFile(dead, []byte("half"), 0o600))
			must(t, s.SetNotes(context.Background(), sn, "y")) // cleans up under the manifest lock
			if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dead writer's temp file still there after an update: %v", err)
			}
			if _, err := os.Stat(live); err != nil {
				t.Errorf("live writer's temp file removed: %v", err)
			}
			releaseWriter()
			n, err = s.CleanupTemps(t.Context(), 0)
			must(t, err)
			if _, err := os.Stat(live); n != 1 || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after its writer died: removed %d, stat %v", n, err)
			}
		})
	}
}
