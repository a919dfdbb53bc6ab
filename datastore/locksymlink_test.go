package datastore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockFileSymlink: a symlink planted where a manifest lock file belongs
// (the legacy scheme keeps it in the snapshot directory, where anyone who
// can write to the datastore can plant one) makes notes writes and snapshot
// removal fail as ErrCorrupt, naming the lock file, and leaves the target
// outside and the snapshot alone.
func TestLockFileSymlink(t *testing.T) {
	s := newStore(t, "legacy")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "old")
	outside := filepath.Join(t.TempDir(), "target")
	must(t, os.WriteFile(outside, []byte("outside"), 0o644))
	lck := s.Locker().ManifestLockPath(sn.lockPath())
	must(t, os.Symlink(outside, lck))

	if err := s.SetNotes(context.Background(), sn, "new"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("SetNotes under a symlinked lock file: %v, want ErrCorrupt", err)
	} else if !strings.Contains(err.Error(), lck) {
		t.Errorf("the error does not name the lock file: %v", err)
	}
	if err := s.RemoveSnapshot(context.Background(), sn); !errors.Is(err, ErrCorrupt) {
		t.Errorf("RemoveSnapshot under a symlinked lock file: %v, want ErrCorrupt", err)
	}
	if m := loadRaw(t, s, sn); m.Notes() != "old" {
		t.Errorf("notes %q", m.Notes())
	}
	if b, _ := os.ReadFile(outside); string(b) != "outside" {
		t.Errorf("outside file changed: %q", b)
	}
	if got, err := os.Readlink(lck); err != nil || got != outside {
		t.Errorf("planted symlink now %q, %v", got, err)
	}
}
