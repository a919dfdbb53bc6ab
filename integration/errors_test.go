package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"pbsfs/demo"
	"pbsfs/lock"
)

// TestWriteErrors: read-only files refuse writes with EACCES, notes that
// are not UTF-8 are refused with EILSEQ (or EINVAL) and change nothing.
func TestWriteErrors(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	snap := "vm/100/2024-06-01T02:00:04Z"

	for _, rel := range []string{snap + "/manifest.json", "vm/100/owner", "ns/prod/vm/300/owner"} {
		before, err := os.ReadFile(m.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(m.path(rel), os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		wantErrno(t, "open for writing "+rel, err, syscall.EACCES)
		_, err = os.OpenFile(m.path(rel), os.O_RDWR|os.O_TRUNC, 0)
		wantErrno(t, "open O_TRUNC "+rel, err, syscall.EACCES)
		err = os.Truncate(m.path(rel), 0)
		wantErrno(t, "truncate "+rel, err, syscall.EACCES, syscall.EPERM)
		if out, err := sh(t, m.dir, "echo x > "+rel); err == nil {
			t.Errorf("echo x > %s succeeded: %s", rel, out)
		}
		after, err := os.ReadFile(m.path(rel))
		if err != nil || !bytes.Equal(before, after) {
			t.Errorf("%s changed: %q -> %q (%v)", rel, before, after, err)
		}
	}
	ownerOnDisk, _ := os.ReadFile(filepath.Join(store, "vm/100/owner"))
	if string(ownerOnDisk) != "root@pam\n" {
		t.Errorf("owner on disk: %q", ownerOnDisk)
	}

	// Invalid UTF-8 in snapshot notes and group notes.
	for _, rel := range []string{snap + "/notes", "vm/100/notes"} {
		diskFile := filepath.Join(store, rel)
		if filepath.Base(filepath.Dir(rel)) == "2024-06-01T02:00:04Z" {
			diskFile = filepath.Join(store, snap, "index.json.blob")
		}
		before, err := os.ReadFile(diskFile)
		if err != nil {
			t.Fatal(err)
		}
		shown, _ := os.ReadFile(m.path(rel))
		err = os.WriteFile(m.path(rel), []byte("bad \xff\xfe bytes\n"), 0o644)
		wantErrno(t, "write invalid UTF-8 to "+rel, err, syscall.EILSEQ, syscall.EINVAL)
		// The kernel releases the file after close returns; nothing may be
		// written then either, and the mount must show the old text.
		eventually(t, rel+" in the mount after the refused write", func() (bool, string) {
			again, err := os.ReadFile(m.path(rel))
			return err == nil && bytes.Equal(again, shown), fmt.Sprintf("%q (%v), want %q", again, err, shown)
		})
		after, _ := os.ReadFile(diskFile)
		if !bytes.Equal(before, after) {
			t.Errorf("%s: %s changed by a refused write", rel, diskFile)
		}
	}
}

// TestRmdir: removing snapshot directories follows PBS's destroy.
func TestRmdir(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	l := m.locker()

	t.Run("in use", func(t *testing.T) {
		for _, c := range []struct{ kind, snap string }{
			{"shared-snapshot", "vm/100/2024-06-01T02:00:04Z"}, // a reader / verify task
			{"snapshot", "ct/200/2024-06-01T01:30:00Z"},        // a backup writer
		} {
			sn := snapshotOf(t, c.snap)
			before := treeDigest(t, filepath.Join(store, c.snap))
			h := m.holdLock(c.kind, sn.Group.NS, sn.Group.Type+"/"+sn.Group.ID+"/"+sn.Time)
			err := os.Remove(m.path(c.snap))
			wantErrno(t, c.kind+" lock held: rmdir "+c.snap, err, syscall.EBUSY)
			diffDigests(t, before, treeDigest(t, filepath.Join(store, c.snap)))
			if names, err := readNames(m.path(c.snap)); err != nil || !equalStrings(names, expectedNames(t, store, c.snap)) || len(names) < 2 {
				t.Errorf("%s after refused rmdir: %q, %v", c.snap, names, err)
			}
			h.release()
			// Free now: it goes.
			if err := os.Remove(m.path(c.snap)); err != nil {
				t.Errorf("rmdir %s after the lock was released: %v", c.snap, err)
			}
			if exists(filepath.Join(store, c.snap)) {
				t.Errorf("%s still on disk", c.snap)
			}
		}
	})

	t.Run("protected", func(t *testing.T) {
		before := treeDigest(t, filepath.Join(store, demo.SampleProtected))
		err := os.Remove(m.path(demo.SampleProtected))
		wantErrno(t, "rmdir protected", err, syscall.EPERM)
		diffDigests(t, before, treeDigest(t, filepath.Join(store, demo.SampleProtected)))
		if _, err := os.Stat(m.path(demo.SampleProtected, "notes")); err != nil {
			t.Errorf("protected snapshot no longer readable: %v", err)
		}
	})

	t.Run("free", func(t *testing.T) {
		snap := "ns/prod/vm/300/2024-05-31T22:00:02Z"
		sn := snapshotOf(t, snap)
		lp := lock.Path{NS: sn.Group.NS, Rel: sn.Group.Type + "/" + sn.Group.ID + "/" + sn.Time}
		if err := os.Remove(m.path(snap)); err != nil {
			t.Fatalf("rmdir %s: %v", snap, err)
		}
		if exists(filepath.Join(store, snap)) {
			t.Errorf("%s still on disk", snap)
		}
		if _, err := os.Lstat(m.path(snap)); err == nil {
			t.Errorf("%s still in the mount", snap)
		}
		names, err := readNames(m.path("ns/prod/vm/300"))
		if err != nil || !equalStrings(names, expectedNames(t, store, "ns/prod/vm/300")) || len(names) != 4 {
			t.Errorf("ls group after rmdir: %q, %v", names, err)
		}
		for _, p := range []string{l.SnapshotLockPath(lp), l.ManifestLockPath(lp)} {
			if exists(p) {
				t.Errorf("lock file %s left behind", p)
			}
		}
	})

	t.Run("emptied group", func(t *testing.T) {
		group := "host/backup-client"
		if err := os.Remove(m.path(group)); err == nil {
			t.Fatalf("rmdir of a group with snapshots succeeded")
		} else {
			wantErrno(t, "rmdir non-empty group", err, syscall.ENOTEMPTY)
		}
		snaps := subdirs(t, filepath.Join(store, group), timeRE)
		if len(snaps) != 2 {
			t.Fatalf("sample changed: %s has %q", group, snaps)
		}
		for _, s := range snaps {
			if err := os.Remove(m.path(group, s)); err != nil {
				t.Fatalf("rmdir %s/%s: %v", group, s, err)
			}
		}
		// The run scheme removes the emptied group (owner, notes, dir).
		if exists(filepath.Join(store, group)) {
			t.Errorf("emptied group %s still on disk", group)
		}
		if _, err := os.Lstat(m.path(group)); err == nil {
			t.Errorf("emptied group %s still in the mount", group)
		}
		names, err := readNames(m.path("host"))
		if err != nil || len(names) != 0 {
			t.Errorf("ls host: %q, %v", names, err)
		}
		if p := l.GroupLockPath(lock.Path{Rel: group}); exists(p) {
			t.Errorf("group lock file %s left behind", p)
		}
	})

	// Whatever happened above, the lock directory holds no lock files of
	// removed snapshots and the rest of the store is as the model says.
	tree := expectedTree(t, store)
	for dir, names := range tree {
		got, err := readNames(m.path(dir))
		if err != nil || !equalStrings(got, names) {
			t.Errorf("ls %q = %q, %v; want %q", dir, got, err, names)
		}
	}
}
