package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// fastStore writes the demo sample store on a tmpfs (as root) — where
// fsync costs nothing, so tests that make thousands of manifest updates
// run in seconds instead of minutes — or, when not root, in a temporary
// directory. Process crashes (SIGKILL) do not depend on fsync.
func fastStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		dir = testsupport.SmallFS(t, "256m")
	}
	store := filepath.Join(dir, "store")
	if _, err := demo.Sample(store); err != nil {
		t.Fatalf("demo.Sample: %v", err)
	}
	return store
}

// smallStore writes a datastore with one group (with notes) and one
// snapshot (with notes) through the datastore package's writer.
func smallStore(t *testing.T, dir string) (store, snap, group string) {
	t.Helper()
	store = filepath.Join(dir, "store")
	if err := datastore.Create(store, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := datastore.Open(store, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: storeName, UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := datastore.Group{Type: "vm", ID: "100"}
	if err := s.CreateGroup(g, "root@pam"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGroupNotes(context.Background(), g, "old group notes\n"); err != nil {
		t.Fatal(err)
	}
	sn := datastore.Snapshot{Group: g, Time: "2024-06-01T02:00:04Z"}
	bt, _ := time.Parse(time.RFC3339, sn.Time)
	m, err := manifest.New("vm", "100", bt.Unix(), []manifest.FileInfo{
		{Filename: "drive-scsi0.img.fidx", CryptMode: "none", Size: 1 << 30, Csum: strings.Repeat("ab", 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unprotected().SetNotes("old notes\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSnapshot(sn, m, nil); err != nil {
		t.Fatal(err)
	}
	return store, sn.Dir(), g.Dir()
}

// TestDiskFull: a store on a tmpfs of 1 MiB that fills up. Writing notes
// through the mount — snapshot notes (into the manifest) and group notes,
// by replacing (echo >) and appending (echo >>) — fails with ENOSPC
// (passed through, not EIO), leaves the manifest and the group notes file
// byte-identical and no temp file behind, and the mount keeps showing the
// old text. Tried with no room at all and with almost enough room (the
// write fails part-way). Once there is room again the writes succeed.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		room int64
	}{
		{"no room", 0},
		{"almost enough room", 64 << 10}, // the new manifest needs ~96 KiB
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := testsupport.SmallFS(t, "1m")
			store, snap, group := smallStore(t, dir)
			m := startMount(t, store)
			blob := filepath.Join(store, snap, "index.json.blob")
			gnotes := filepath.Join(store, group, "notes")
			oldBlob, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			oldGroup, err := os.ReadFile(gnotes)
			if err != nil {
				t.Fatal(err)
			}
			big := testsupport.RandomText(t, 96<<10)
			filler := testsupport.FillUpTo(t, dir, c.room)

			for _, rel := range []string{snap + "/notes", group + "/notes"} {
				for _, w := range []struct {
					how   string
					write func(p string) error
				}{
					{"replace", func(p string) error { return os.WriteFile(p, []byte(big), 0o644) }},
					{"append", func(p string) error {
						f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
						if err != nil {
							return err
						}
						_, err = f.WriteString(big)
						if cerr := f.Close(); err == nil {
							err = cerr
						}
						return err
					}},
				} {
					err := w.write(m.path(rel))
					wantErrno(t, w.how+" "+rel+" on a full file system", err, syscall.ENOSPC)
					if got, err := os.ReadFile(blob); err != nil || !bytes.Equal(got, oldBlob) {
						t.Errorf("%s %s: manifest changed by the failed write (%v)", w.how, rel, err)
					}
					if got, err := os.ReadFile(gnotes); err != nil || !bytes.Equal(got, oldGroup) {
						t.Errorf("%s %s: group notes changed by the failed write: %.40q (%v)", w.how, rel, got, err)
					}
					for _, d := range []string{snap, group} {
						if ts := tempFiles(t, filepath.Join(store, d)); len(ts) > 0 {
							t.Errorf("%s %s: temp files left in %s: %q", w.how, rel, d, ts)
						}
					}
				}
			}
			for rel, want := range map[string]string{snap + "/notes": "old notes\n", group + "/notes": "old group notes\n"} {
				if got, err := os.ReadFile(m.path(rel)); err != nil || string(got) != want {
					t.Errorf("%s after the failed writes: %.40q, %v; want %q", rel, got, err, want)
				}
			}
			if !strings.Contains(m.stderr.String(), "no space left on device") {
				t.Errorf("pbsfs did not log the ENOSPC:\n%s", m.stderr)
			}

			// Room again.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			for _, rel := range []string{snap + "/notes", group + "/notes"} {
				if err := os.WriteFile(m.path(rel), []byte(big), 0o644); err != nil {
					t.Errorf("write %s once there is room: %v", rel, err)
				}
				if got, err := os.ReadFile(m.path(rel)); err != nil || string(got) != big {
					t.Errorf("read %s back: %d bytes, %v", rel, len(got), err)
				}
			}
			if mm, _ := loadManifest(t, store, snap); mm.Notes() != big {
				t.Error("snapshot notes not on disk once there was room")
			}
			m.stop()
		})
	}
}
