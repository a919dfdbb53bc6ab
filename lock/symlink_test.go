package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSymlinkNotFollowed: a symlink where a lock file or a locked directory
// belongs (planted by whoever can write to the lock directory or, in the
// legacy scheme, to the snapshot directory) is never followed: taking the
// lock fails with ELOOP (ENOTDIR for a directory lock), and the target outside is neither created nor
// opened nor locked.
func TestSymlinkNotFollowed(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		outside := t.TempDir()
		target := filepath.Join(outside, "target")
		if err := os.WriteFile(target, []byte("outside"), 0o644); err != nil {
			t.Fatal(err)
		}
		plant := func(p, to string) {
			t.Helper()
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(to, p); err != nil {
				t.Fatal(err)
			}
		}
		check := func(what string, lk *Lock, err error) {
			t.Helper()
			if err == nil {
				lk.Unlock()
				t.Errorf("%s through a symlink: locked", what)
				return
			}
			// A directory opened O_DIRECTORY|O_NOFOLLOW gives ENOTDIR.
			if !errors.Is(err, syscall.ELOOP) && !(cfg.Scheme != Run && errors.Is(err, syscall.ENOTDIR)) {
				t.Errorf("%s through a symlink: %v, want ELOOP", what, err)
			}
		}

		// The manifest lock file, pointing at an existing file and at a
		// missing one (which must not be created).
		for _, to := range []string{target, filepath.Join(outside, "missing")} {
			plant(l.ManifestLockPath(snapP), to)
			lk, err := l.LockManifest(context.Background(), snapP, 0)
			check("manifest lock (no wait)", lk, err)
			lk, err = l.LockManifest(context.Background(), snapP, ManifestTimeout)
			if err == nil {
				lk.Unlock()
				t.Errorf("manifest lock (waiting) through a symlink: locked")
			} else if !errors.Is(err, syscall.ELOOP) {
				t.Errorf("manifest lock (waiting) through a symlink: %v, want ELOOP", err)
			}
		}
		if _, err := os.Lstat(filepath.Join(outside, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the missing target of a planted lock file was created: %v", err)
		}

		// Snapshot and group locks: lock files (run) or directories
		// (dirs, legacy).
		dirTarget := t.TempDir()
		to := target
		if cfg.Scheme != Run {
			to = dirTarget
		}
		plant(l.SnapshotLockPath(snapP), to)
		lk, err := l.LockSnapshot(snapP, false)
		check("exclusive snapshot lock", lk, err)
		lk, err = l.LockSnapshot(snapP, true)
		check("shared snapshot lock", lk, err)
		if err := os.Remove(l.SnapshotLockPath(snapP)); err != nil {
			t.Fatal(err)
		}
		plant(l.GroupLockPath(groupP), to)
		lk, err = l.LockGroup(groupP)
		check("group lock", lk, err)

		// Nothing outside is held: we can lock both ourselves.
		for _, p := range []string{target, dirTarget} {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				t.Errorf("%s is locked: %v", p, err)
			}
			f.Close()
		}
		if b, _ := os.ReadFile(target); string(b) != "outside" {
			t.Errorf("outside file changed: %q", b)
		}
	})
}

// TestSymlinkOnPathNotFollowed: in the schemes that lock inside the
// datastore (dirs, legacy), a symlink planted anywhere on the path, not only
// as the last component, is not followed: the locks fail with ELOOP, and
// nothing outside is created or locked.
func TestSymlinkOnPathNotFollowed(t *testing.T) {
	for _, scheme := range []Scheme{Dirs, Legacy} {
		t.Run(string(scheme), func(t *testing.T) { testSymlinkOnPath(t, setup(t, scheme)) })
	}
}

func testSymlinkOnPath(t *testing.T, cfg Config) {
	l := mustNew(t, cfg)
	// The type directory "vm" becomes a symlink to a copy outside
	// holding the same group and snapshot directories.
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "100", tm), 0o755); err != nil {
		t.Fatal(err)
	}
	vm := filepath.Join(cfg.Base, "vm")
	if err := os.RemoveAll(vm); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, vm); err != nil {
		t.Fatal(err)
	}
	tries := map[string]func() (*Lock, error){
		"group":           func() (*Lock, error) { return l.LockGroup(groupP) },
		"snapshot":        func() (*Lock, error) { return l.LockSnapshot(snapP, false) },
		"shared snapshot": func() (*Lock, error) { return l.LockSnapshot(snapP, true) },
	}
	if cfg.Scheme == Legacy { // the dirs scheme keeps it in the lock directory
		tries["manifest (no wait)"] = func() (*Lock, error) { return l.LockManifest(t.Context(), snapP, 0) }
		tries["manifest"] = func() (*Lock, error) { return l.LockManifest(t.Context(), snapP, shortTimeout) }
	}
	for what, try := range tries {
		lk, err := try()
		if err == nil {
			lk.Unlock()
			t.Errorf("%s lock through a symlinked parent: locked %s", what, lk.Path())
		} else if !errors.Is(err, syscall.ELOOP) {
			t.Errorf("%s lock through a symlinked parent: %v, want ELOOP", what, err)
		}
	}
	// Nothing outside is held or created.
	for _, p := range []string{filepath.Join(outside, "100"), filepath.Join(outside, "100", tm)} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("%s is locked: %v", p, err)
		}
		f.Close()
	}
	if _, err := os.Lstat(filepath.Join(outside, "100", tm, manifestLockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a lock file was created outside the datastore: %v", err)
	}
}
