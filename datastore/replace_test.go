package datastore

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"pbsfs/lock"
)

// TestDirSyncFailureAfterRename: once the new manifest or notes file is
// renamed into place the save happened; a failing fsync of the directory
// after it (injected) is logged, and the save is reported as done — not as
// an error that would make the writer retry or give up a save that is in
// place.
func TestDirSyncFailureAfterRename(t *testing.T) {
	s := newStore(t, lock.Run)
	var logged bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logged, nil))
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "old")
	syncs := 0
	s.testHookDirSync = func(int) error { syncs++; return syscall.EIO }

	if err := s.SetNotes(context.Background(), sn, "new"); err != nil {
		t.Errorf("notes save with a failing directory fsync after the rename: %v, want success", err)
	}
	if got := loadRaw(t, s, sn).Notes(); got != "new" {
		t.Errorf("notes on disk %q, want %q", got, "new")
	}
	if m, _, err := s.Manifest(sn); err != nil || m.Notes() != "new" {
		t.Errorf("manifest as the store serves it: %v, %v", m, err)
	}
	if err := s.SetGroupNotes(context.Background(), sn.Group, "group new"); err != nil {
		t.Errorf("group notes save with a failing directory fsync after the rename: %v, want success", err)
	}
	if got, _, err := s.GroupNotes(sn.Group); err != nil || got != "group new" {
		t.Errorf("group notes on disk %q, %v", got, err)
	}
	if syncs != 2 {
		t.Errorf("%d directory fsyncs failed, want 2 (the hook was not reached?)", syncs)
	}
	if n := strings.Count(logged.String(), "fsync of the directory after the rename failed"); n != 2 {
		t.Errorf("%d log lines about the failed directory fsync, want 2:\n%s", n, logged.String())
	}
	assertNoTemps(t, s.Path()+"/"+sn.Dir())
}
