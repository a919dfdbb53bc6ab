package datastore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// TestDiskFull: when the datastore's file system fills up, a manifest
// update and a group notes write fail with an error that carries ENOSPC
// (kind ErrIO), the old file stays byte-identical and no temp file is left;
// once there is room again the same write succeeds. Both "no room at all"
// (the temp file cannot get a single block) and "almost enough room" (the
// write fails part-way) are tried, under every lock scheme (the legacy
// scheme keeps its manifest lock file inside the snapshot directory, on the
// full file system).
func TestDiskFull(t *testing.T) {
	for _, scheme := range schemes {
		for _, c := range []struct {
			name string
			room func(needed int64) int64 // free bytes left, given the new blob's size
		}{
			{"no room", func(int64) int64 { return 0 }},
			{"almost enough room", func(needed int64) int64 { return needed - 8192 }},
		} {
			t.Run(string(scheme)+"/"+c.name, func(t *testing.T) {
				mnt := testsupport.SmallFS(t, "1m")
				base := filepath.Join(mnt, "store")
				must(t, Create(base, CreateOptions{}))
				s, err := Open(base, Options{Lock: lock.Config{Scheme: scheme, Dir: t.TempDir(), Store: "test", UID: -1, GID: -1}})
				must(t, err)
				defer s.Close()

				sn := snap(nil, "vm", "100", testTime)
				addSnapshot(t, s, sn, "old notes\n")
				g := sn.Group
				must(t, s.SetGroupNotes(context.Background(), g, "old group notes\n"))
				g2 := Group{Type: "ct", ID: "200"} // a group without notes file
				must(t, s.CreateGroup(g2, "root@pam"))

				blob := filepath.Join(base, sn.Dir(), ManifestName)
				oldBlob, err := os.ReadFile(blob)
				must(t, err)
				gnotes := filepath.Join(base, g.Dir(), GroupNotesName)
				oldGroup, err := os.ReadFile(gnotes)
				must(t, err)

				// Big, incompressible notes: the new manifest needs many
				// blocks.
				newNotes := testsupport.RandomText(t, 96<<10)
				newBlob, _, err := manifest.UpdateBlob(oldBlob, func(u *manifest.Unprotected) error { return u.SetNotes(newNotes) })
				must(t, err)
				needed := int64(len(newBlob))
				room := max(c.room(needed), 0)
				filler := testsupport.FillUpTo(t, mnt, room)
				t.Logf("new manifest %d bytes, %d bytes free", needed, testsupport.FreeBytes(t, mnt))

				checkENOSPC := func(what string, err error) {
					t.Helper()
					if err == nil {
						t.Fatalf("%s on a full file system succeeded", what)
					}
					if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrIO) {
						t.Errorf("%s: %v; want ErrIO carrying ENOSPC", what, err)
					}
				}
				checkENOSPC("set notes", s.SetNotes(context.Background(), sn, newNotes))
				checkENOSPC("update manifest", s.UpdateManifest(context.Background(), sn, func(u *manifest.Unprotected) error {
					return u.Set("verify_state", []byte(`{"state":"ok","upid":"`+testsupport.RandomText(t, 96<<10)+`"}`))
				}))
				checkENOSPC("set group notes", s.SetGroupNotes(context.Background(), g, newNotes))
				checkENOSPC("set new group notes", s.SetGroupNotes(context.Background(), g2, newNotes))

				if got, _ := os.ReadFile(blob); !bytes.Equal(got, oldBlob) {
					t.Error("manifest changed by a failed write")
				}
				if m, _, err := s.Manifest(sn); err != nil || m.Notes() != "old notes\n" {
					t.Errorf("manifest after the failed write: %v", err)
				}
				if got, _ := os.ReadFile(gnotes); !bytes.Equal(got, oldGroup) {
					t.Error("group notes changed by a failed write")
				}
				if _, err := os.Lstat(filepath.Join(base, g2.Dir(), GroupNotesName)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed first group notes write left a notes file: %v", err)
				}
				for _, d := range []string{sn.Dir(), g.Dir(), g2.Dir()} {
					assertNoTemps(t, filepath.Join(base, d))
				}

				// Room again: the same writes succeed.
				must(t, os.Remove(filler))
				must(t, s.SetNotes(context.Background(), sn, newNotes))
				must(t, s.SetGroupNotes(context.Background(), g, newNotes))
				if m := loadRaw(t, s, sn); m.Notes() != newNotes {
					t.Error("notes not written once there was room")
				}
				for _, d := range []string{sn.Dir(), g.Dir()} {
					assertNoTemps(t, filepath.Join(base, d))
				}
			})
		}
	}
}
