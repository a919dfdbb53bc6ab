package datastore

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pbsfs/manifest"
)

// TestSpecialFiles: a FIFO or a socket where the store has a regular file
// (group notes, owner, index.json.blob) is reported as ErrCorrupt at once;
// nothing blocks waiting for a FIFO writer (which would hang the FUSE
// request, and an update would hang holding the manifest lock), and no
// write replaces it.
func TestSpecialFiles(t *testing.T) {
	for _, kind := range []string{"fifo", "socket"} {
		t.Run(kind, func(t *testing.T) {
			s := newStore(t, "run")
			sn := snap(nil, "vm", "100", testTime)
			addSnapshot(t, s, sn, "x")
			g := sn.Group
			gdir := filepath.Join(s.Path(), g.Dir())
			plant := func(p string) {
				t.Helper()
				must(t, os.Remove(p))
				switch kind {
				case "fifo":
					must(t, syscall.Mkfifo(p, 0o644))
				case "socket":
					l, err := net.Listen("unix", p)
					must(t, err)
					t.Cleanup(func() { l.Close() })
				}
			}
			must(t, os.WriteFile(filepath.Join(gdir, GroupNotesName), []byte("notes"), 0o644))
			plant(filepath.Join(gdir, GroupNotesName))
			plant(filepath.Join(gdir, OwnerName))
			plant(filepath.Join(s.Path(), sn.Dir(), ManifestName))

			calls := map[string]func() error{
				"GroupNotes":    func() error { _, _, err := s.GroupNotes(g); return err },
				"GroupOwner":    func() error { _, _, err := s.GroupOwner(g); return err },
				"SetGroupNotes": func() error { return s.SetGroupNotes(context.Background(), g, "new") },
				"Manifest":      func() error { _, _, err := s.Manifest(sn); return err },
				"ManifestJSON":  func() error { _, _, err := s.ManifestJSON(sn); return err },
				"SetNotes":      func() error { return s.SetNotes(context.Background(), sn, "new") },
				"UpdateManifest": func() error {
					return s.UpdateManifest(context.Background(), sn, func(u *manifest.Unprotected) error { return u.SetNotes("new") })
				},
			}
			for name, call := range calls {
				done := make(chan error, 1)
				go func() { done <- call() }()
				select {
				case err := <-done:
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("%s with a %s in the store: %v, want ErrCorrupt", name, kind, err)
					}
				case <-time.After(time.Minute):
					t.Fatalf("%s blocks on a %s in the store", name, kind)
				}
			}
			for _, p := range []string{filepath.Join(gdir, GroupNotesName), filepath.Join(gdir, OwnerName), filepath.Join(s.Path(), sn.Dir(), ManifestName)} {
				fi, err := os.Lstat(p)
				if err != nil || fi.Mode().IsRegular() {
					t.Errorf("%s replaced: %v %v", p, fi.Mode(), err)
				}
			}
			assertNoTemps(t, gdir)
			assertNoTemps(t, filepath.Join(s.Path(), sn.Dir()))
		})
	}
}
