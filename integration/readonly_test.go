package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pbsfs/demo"
)

// TestReadOnly: a --read-only mount serves everything but refuses every
// change with EROFS, and the store is byte-identical afterwards.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	before := treeDigest(t, store)
	m := startMount(t, store, "--read-only")

	snap := "vm/100/2024-06-01T02:00:04Z"
	notes := m.path(snap, "notes")
	refused := map[string]func() error{
		"write notes":         func() error { return os.WriteFile(notes, []byte("x\n"), 0o644) },
		"open notes O_WRONLY": func() error { f, err := os.OpenFile(notes, os.O_WRONLY, 0); closeIf(f); return err },
		"open notes O_APPEND": func() error {
			f, err := os.OpenFile(notes, os.O_WRONLY|os.O_APPEND, 0)
			closeIf(f)
			return err
		},
		"truncate notes":      func() error { return os.Truncate(notes, 0) },
		"chmod notes":         func() error { return os.Chmod(notes, 0o600) },
		"write group notes":   func() error { return os.WriteFile(m.path("vm/100/notes"), []byte("x"), 0o644) },
		"rmdir snapshot":      func() error { return os.Remove(m.path(snap)) },
		"rmdir protected":     func() error { return os.Remove(m.path(demo.SampleProtected)) },
		"rmdir group":         func() error { return os.Remove(m.path("host/backup-client")) },
		"mkdir":               func() error { return os.Mkdir(m.path("vm/999"), 0o755) },
		"mkdir snapshot":      func() error { return os.Mkdir(m.path("vm/100/2030-01-01T00:00:00Z"), 0o755) },
		"create scratch file": func() error { return os.WriteFile(m.path(snap, ".notes.swp"), []byte("x"), 0o600) },
		"create in root":      func() error { return os.WriteFile(m.path("x"), nil, 0o644) },
		"rename notes":        func() error { return os.Rename(notes, m.path(snap, "notes~")) },
		"remove notes":        func() error { return os.Remove(notes) },
		"symlink":             func() error { return os.Symlink("x", m.path(snap, ".#notes")) },
		"chtimes manifest":    func() error { return os.Chtimes(m.path(snap, "manifest.json"), time.Unix(1, 0), time.Unix(1, 0)) },
	}
	for name, op := range refused {
		wantErrno(t, name, op(), syscall.EROFS)
	}
	if out, err := sh(t, m.path(snap), "echo x > notes"); err == nil {
		t.Errorf("echo x > notes succeeded: %s", out)
	}

	// Reading still works.
	for _, rel := range []string{snap + "/notes", snap + "/manifest.json", "vm/100/notes", "vm/100/owner"} {
		got, err := os.ReadFile(m.path(rel))
		if err != nil || !bytes.Equal(got, expectedContent(t, store, rel)) {
			t.Errorf("read %s: %q, %v", rel, got, err)
		}
	}
	m.stop()

	diffDigests(t, before, treeDigest(t, store))
	// Read-only mounts take no locks.
	if ents, err := os.ReadDir(m.lockDir); err == nil && len(ents) > 0 {
		var names []string
		_ = filepath.WalkDir(m.lockDir, func(p string, _ os.DirEntry, _ error) error { names = append(names, p); return nil })
		t.Errorf("read-only mount created lock files: %q", names)
	}
}

func closeIf(f *os.File) {
	if f != nil {
		f.Close()
	}
}
