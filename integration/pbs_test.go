package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// pbsSetNotes does what PBS's set_notes does, from outside pbsfs: the
// manifest lock, load, change unprotected.notes, temp file + rename.
func (m *mount) pbsSetNotes(snapRel, notes string) {
	m.t.Helper()
	sn := snapshotOf(m.t, snapRel)
	lk, err := m.locker().LockManifest(context.Background(), lock.Path{NS: sn.Group.NS, Rel: sn.Group.Type + "/" + sn.Group.ID + "/" + sn.Time}, lock.ManifestTimeout)
	if err != nil {
		m.t.Fatalf("manifest lock: %v", err)
	}
	defer lk.Unlock()
	blob := filepath.Join(m.store, snapRel, "index.json.blob")
	raw, err := os.ReadFile(blob)
	if err != nil {
		m.t.Fatal(err)
	}
	out, _, err := manifest.UpdateBlob(raw, func(u *manifest.Unprotected) error { return u.SetNotes(notes) })
	if err != nil {
		m.t.Fatal(err)
	}
	tmp := blob + ".tmp_pbs"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, blob); err != nil {
		m.t.Fatal(err)
	}
}

// eventually polls cond for a few seconds (the kernel caches entries and
// attributes until pbsfs's revalidator sees the change, every few seconds).
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(changeVisible())
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: still %s", what, state)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPBSAlongside: pbsfs stays correct while PBS works on the same store —
// it waits for PBS's manifest lock, refuses to overwrite notes PBS changed
// under an open edit (ESTALE), and shows changes PBS made.
func TestPBSAlongside(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)

	t.Run("manifest lock held too long", func(t *testing.T) {
		snap := "ct/200/2024-06-01T01:30:00Z"
		sn := snapshotOf(t, snap)
		before, _ := os.ReadFile(filepath.Join(store, snap, "index.json.blob"))
		h := m.holdLock("manifest", sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
		start := time.Now()
		// os.WriteFile reports close's error, which the shell's > ignores.
		err := os.WriteFile(m.path(snap, "notes"), []byte("blocked\n"), 0o644)
		took := time.Since(start)
		h.release()
		wantErrno(t, "write notes while PBS holds the manifest lock", err, syscall.EAGAIN)
		if took < lock.ManifestTimeout-500*time.Millisecond {
			t.Errorf("gave up after %v, PBS waits %v", took, lock.ManifestTimeout)
		}
		// An error returned by close must mean nothing was written: the
		// application may retry (and a retried >> would then append twice).
		// fs currently retries the failed commit at the last release.
		t.Run("not committed at release", func(t *testing.T) {
			time.Sleep(scaled(time.Second))
			after, _ := os.ReadFile(filepath.Join(store, snap, "index.json.blob"))
			if !bytes.Equal(before, after) {
				mm, _ := manifest.Load(after)
				t.Errorf("manifest changed although the write failed with EAGAIN: notes now %q", mm.Notes())
			}
		})
	})

	t.Run("manifest lock released in time", func(t *testing.T) {
		snap := "ct/200/2024-06-02T01:30:00Z"
		sn := snapshotOf(t, snap)
		h := m.holdLock("manifest", sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
		time.AfterFunc(time.Second, h.release)
		start := time.Now()
		if out, err := sh(t, m.path(snap), "echo waited > notes"); err != nil {
			t.Errorf("echo > notes while the lock is released after 1s: %v: %s", err, out)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("notes written after %v although the manifest lock was held for 1s", took)
		}
		if mm, _ := loadManifest(t, store, snap); mm.Notes() != "waited\n" {
			t.Errorf("notes on disk %q", mm.Notes())
		}
	})

	t.Run("stale edit", func(t *testing.T) {
		snap := "vm/100/2024-06-03T02:00:05Z"
		m.pbsSetNotes(snap, "first line\n")
		f, err := os.OpenFile(m.path(snap, "notes"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("appended by a user\n")); err != nil {
			t.Fatal(err)
		}
		m.pbsSetNotes(snap, "changed in the PBS GUI meanwhile\n")
		err = f.Close()
		wantErrno(t, "close of an edit based on notes PBS changed meanwhile", err, syscall.ESTALE)
		if mm, _ := loadManifest(t, store, snap); mm.Notes() != "changed in the PBS GUI meanwhile\n" {
			t.Errorf("PBS's notes were overwritten: %q", mm.Notes())
		}
	})

	t.Run("changes by PBS show", func(t *testing.T) {
		snap := "ns/prod/ct/310/2024-06-01T21:00:00Z"
		for _, f := range []string{"notes", "manifest.json"} { // fill the kernel caches
			if _, err := os.ReadFile(m.path(snap, f)); err != nil {
				t.Fatal(err)
			}
		}
		m.pbsSetNotes(snap, "set through the PBS API\n")
		for _, f := range []string{"notes", "manifest.json"} {
			rel := snap + "/" + f
			want := expectedContent(t, store, rel)
			eventually(t, rel, func() (bool, string) {
				got, err := os.ReadFile(m.path(rel))
				fi, serr := os.Stat(m.path(rel))
				ok := err == nil && serr == nil && bytes.Equal(got, want) && fi.Size() == int64(len(want))
				return ok, fmt.Sprintf("%q (%v, %v)", got, err, serr)
			})
		}

		// A backup finishes: a new snapshot appears; prune removes one.
		w, err := datastore.Open(store, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: m.lockDir, Store: storeName, UID: -1, GID: -1}})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		old, _ := loadManifest(t, store, snap)
		nm, err := manifest.New("ct", "310", old.BackupTime()+86400*30, old.Files())
		if err != nil {
			t.Fatal(err)
		}
		newSnap := datastore.Snapshot{Group: datastore.Group{NS: datastore.NS{"prod"}, Type: "ct", ID: "310"}, Time: "2024-07-01T21:00:00Z"}
		if err := w.WriteSnapshot(newSnap, nm, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(store, "ns/prod/ct/310/2024-06-02T21:00:00Z")); err != nil {
			t.Fatal(err)
		}
		want := expectedNames(t, store, "ns/prod/ct/310")
		eventually(t, "ls after PBS added and removed snapshots", func() (bool, string) {
			names, err := readNames(m.path("ns/prod/ct/310"))
			return err == nil && equalStrings(names, want), fmt.Sprintf("%q (%v), want %q", names, err, want)
		})
		eventually(t, "removed snapshot", func() (bool, string) {
			_, err := os.Stat(m.path("ns/prod/ct/310/2024-06-02T21:00:00Z/notes"))
			return errnoOf(err) == syscall.ENOENT, fmt.Sprint(err)
		})
		got, err := os.ReadFile(m.path("ns/prod/ct/310/2024-07-01T21:00:00Z/manifest.json"))
		if err != nil || !bytes.Equal(got, append(nm.MarshalPretty(), '\n')) {
			t.Errorf("new snapshot's manifest.json: %q, %v", got, err)
		}
	})
}
