package datastore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pbsfs/lock"
	"pbsfs/manifest"
)

func TestListing(t *testing.T) {
	s := newStore(t, "run")
	addSnapshot(t, s, snap(nil, "vm", "100", "2024-06-05T14:22:01Z"), "a")
	addSnapshot(t, s, snap(nil, "vm", "100", "2024-06-04T14:22:01Z"), "")
	addSnapshot(t, s, snap(nil, "ct", "200", testTime), "")
	addSnapshot(t, s, snap(NS{"prod"}, "host", "web.example", testTime), "")
	addSnapshot(t, s, snap(NS{"prod", "db"}, "vm", "300", testTime), "")
	base := s.Path()
	// Things PBS would not list: odd names, files, symlinks.
	must(t, os.Mkdir(filepath.Join(base, "vm/100/not-a-time"), 0o755))
	must(t, os.WriteFile(filepath.Join(base, "vm/100/2024-06-06T00:00:00Z"), nil, 0o644)) // file, not dir
	must(t, os.Symlink("/tmp", filepath.Join(base, "vm/101")))
	must(t, os.Mkdir(filepath.Join(base, "qemu"), 0o755))
	must(t, os.Mkdir(filepath.Join(base, "ns/.x"), 0o755))

	for _, tc := range []struct {
		name string
		got  func() ([]string, error)
		want []string
	}{
		{"root types", func() ([]string, error) { return s.ListTypes(nil) }, []string{"ct", "vm"}},
		{"root namespaces", func() ([]string, error) { return s.ListNamespaces(nil) }, []string{"prod"}},
		{"prod namespaces", func() ([]string, error) { return s.ListNamespaces(NS{"prod"}) }, []string{"db"}},
		{"leaf namespaces", func() ([]string, error) { return s.ListNamespaces(NS{"prod", "db"}) }, nil},
		{"prod types", func() ([]string, error) { return s.ListTypes(NS{"prod"}) }, []string{"host"}},
		{"vm groups", func() ([]string, error) { return s.ListGroups(nil, "vm") }, []string{"100"}},
		{"snapshots", func() ([]string, error) { return s.ListSnapshots(Group{Type: "vm", ID: "100"}) },
			[]string{"2024-06-04T14:22:01Z", "2024-06-05T14:22:01Z"}},
	} {
		got, err := tc.got()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s = %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := s.ListGroups(nil, "qemu"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ListGroups(qemu) = %v, want ErrInvalid", err)
	}
	if _, err := s.ListSnapshots(Group{Type: "vm", ID: "101"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListSnapshots of a symlinked group = %v, want ErrNotFound (not followed)", err)
	}
}

func TestSnapshotStates(t *testing.T) {
	s := newStore(t, "run")
	fin := snap(nil, "vm", "100", "2024-06-01T00:00:00Z")
	unf := snap(nil, "vm", "100", "2024-06-02T00:00:00Z")
	prot := snap(nil, "vm", "100", "2024-06-03T00:00:00Z")
	dirBlob := snap(nil, "vm", "100", "2024-06-04T00:00:00Z")
	linkBlob := snap(nil, "vm", "100", "2024-06-05T00:00:00Z")
	badCRC := snap(nil, "vm", "100", "2024-06-06T00:00:00Z")
	addSnapshot(t, s, fin, "hello")
	must(t, s.MakeSnapshotDir(unf))
	addSnapshot(t, s, prot, "")
	must(t, os.WriteFile(filepath.Join(s.Path(), prot.Dir(), ProtectedName), nil, 0o644))
	must(t, s.MakeSnapshotDir(dirBlob))
	must(t, os.Mkdir(filepath.Join(s.Path(), dirBlob.Dir(), ManifestName), 0o755))
	must(t, s.MakeSnapshotDir(linkBlob))
	must(t, os.Symlink(filepath.Join(s.Path(), fin.Dir(), ManifestName), filepath.Join(s.Path(), linkBlob.Dir(), ManifestName)))
	addSnapshot(t, s, badCRC, "x")
	flipByte(t, filepath.Join(s.Path(), badCRC.Dir(), ManifestName), -1)
	// Only the CRC field is wrong; the payload decodes to a valid manifest.
	crcField := snap(nil, "vm", "100", "2024-06-07T00:00:00Z")
	addSnapshot(t, s, crcField, "x")
	flipByte(t, filepath.Join(s.Path(), crcField.Dir(), ManifestName), 8)

	// What pbsfs asks: the directory (lookups), the manifest's stamp
	// (listing: unfinished or not), the decoded manifest (notes).
	for _, tc := range []struct {
		sn       Snapshot
		stampErr error // ManifestStamp
		readErr  error // Manifest
	}{
		{fin, nil, nil},
		{unf, ErrUnfinished, ErrUnfinished},
		{prot, nil, nil},
		{dirBlob, ErrCorrupt, ErrCorrupt},
		{linkBlob, ErrCorrupt, ErrCorrupt},
		{badCRC, nil, ErrCorrupt},
		{crcField, nil, manifest.ErrBadCRC},
	} {
		if dir, err := s.StatSnapshotDir(tc.sn); err != nil || !dir.IsDir() {
			t.Errorf("%s: StatSnapshotDir = %+v, %v", tc.sn, dir, err)
		}
		if _, err := s.ManifestStamp(tc.sn); !errors.Is(err, tc.stampErr) || (err == nil) != (tc.stampErr == nil) {
			t.Errorf("%s: ManifestStamp error %v, want %v", tc.sn, err, tc.stampErr)
		}
		m, _, err := s.Manifest(tc.sn)
		if tc.readErr == nil {
			if err != nil {
				t.Errorf("%s: Manifest: %v", tc.sn, err)
			} else if m.BackupID() != "100" {
				t.Errorf("%s: BackupID %q", tc.sn, m.BackupID())
			}
		} else if !errors.Is(err, tc.readErr) {
			t.Errorf("%s: Manifest error %v, want %v", tc.sn, err, tc.readErr)
		} else if !strings.Contains(err.Error(), tc.sn.Dir()) {
			t.Errorf("%s: error does not name the file: %v", tc.sn, err)
		}
	}
	if _, err := s.StatSnapshotDir(snap(nil, "vm", "100", "2030-01-01T00:00:00Z")); !errors.Is(err, ErrNotFound) {
		t.Errorf("StatSnapshotDir of a missing snapshot: %v", err)
	}
}

func TestManifestCacheSeesChanges(t *testing.T) {
	s := newStore(t, "run")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "one")
	m1, _, err := s.Manifest(sn)
	must(t, err)
	m2, _, err := s.Manifest(sn)
	must(t, err)
	if m1 != m2 {
		t.Error("second read decoded again instead of using the cache")
	}
	// An outside writer (PBS) replaces the blob: seen at once.
	m := loadRaw(t, s, sn)
	must(t, m.Unprotected().SetNotes("two"))
	raw, err := m.EncodeBlob()
	must(t, err)
	p := filepath.Join(s.Path(), sn.Dir(), ManifestName)
	must(t, os.WriteFile(p+".tmp", raw, 0o644))
	must(t, os.Rename(p+".tmp", p))
	m3, _, err := s.Manifest(sn)
	must(t, err)
	if m3.Notes() != "two" {
		t.Errorf("notes after outside change = %q, want two", m3.Notes())
	}
}

func TestUpdateKeepsSignedPartOwnerAndMode(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(NS{"a"}, "vm", "100", testTime)
			orig := addSnapshot(t, s, sn, "old")
			p := filepath.Join(s.Path(), sn.Dir(), ManifestName)
			must(t, os.Chmod(p, 0o640))
			if os.Getuid() == 0 {
				must(t, os.Chown(p, 34, 34))
			}
			before, err := os.Stat(p)
			must(t, err)

			must(t, s.SetNotes(context.Background(), sn, "new ✓ \"quoted\"\nline 2"))
			got := loadRaw(t, s, sn)
			if got.Notes() != "new ✓ \"quoted\"\nline 2" {
				t.Errorf("notes = %q", got.Notes())
			}
			a, err := orig.CanonicalSigned()
			must(t, err)
			b, err := got.CanonicalSigned()
			must(t, err)
			if !bytes.Equal(a, b) {
				t.Errorf("signed part changed:\n%s\n%s", a, b)
			}
			if v, ok := got.Unprotected().Get("chunk_upload_stats"); !ok || !strings.Contains(string(v), "compressed_size") {
				t.Errorf("other unprotected keys lost: %s", v)
			}
			after, err := os.Stat(p)
			must(t, err)
			if after.Mode() != before.Mode() {
				t.Errorf("mode %v, want %v", after.Mode(), before.Mode())
			}
			if os.Getuid() == 0 {
				st := statT(t, p)
				if st.Uid != 34 || st.Gid != 34 {
					t.Errorf("owner %d:%d, want 34:34", st.Uid, st.Gid)
				}
			}
			assertNoTemps(t, filepath.Join(s.Path(), sn.Dir()))
		})
	}
}

func TestUpdateRefusesBadInputAndLeavesFileAlone(t *testing.T) {
	s := newStore(t, "run")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "keep")
	p := filepath.Join(s.Path(), sn.Dir(), ManifestName)
	orig, err := os.ReadFile(p)
	must(t, err)

	if err := s.SetNotes(context.Background(), sn, "bad \xff utf8"); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid UTF-8: %v, want ErrInvalid", err)
	}
	if err := s.SetNotes(context.Background(), sn, strings.Repeat("x", MaxNotesSize+1)); !errors.Is(err, ErrInvalid) || !errors.Is(err, manifest.ErrTooLarge) {
		t.Errorf("huge notes: %v, want ErrInvalid and manifest.ErrTooLarge", err)
	}
	if err := s.ReplaceNotes(context.Background(), sn, ptr("not what is there"), "x"); !errors.Is(err, ErrStale) {
		t.Errorf("stale base: %v, want ErrStale", err)
	}
	if err := s.UpdateManifest(context.Background(), sn, func(u *manifest.Unprotected) error { return errors.New("boom") }); err == nil {
		t.Error("error from fn not returned")
	}
	now, err := os.ReadFile(p)
	must(t, err)
	if !bytes.Equal(orig, now) {
		t.Error("manifest changed by a refused update")
	}
	// Same notes again: nothing written (mtime and inode unchanged).
	st1 := statT(t, p)
	must(t, s.SetNotes(context.Background(), sn, "keep"))
	if st2 := statT(t, p); st2.Ino != st1.Ino || st2.Mtim != st1.Mtim {
		t.Error("unchanged notes rewrote the manifest")
	}
	// Base matches: written.
	must(t, s.ReplaceNotes(context.Background(), sn, ptr("keep"), "next"))
	if got := loadRaw(t, s, sn).Notes(); got != "next" {
		t.Errorf("notes = %q", got)
	}

	// Corrupt blobs: typed error, file untouched, no temp left.
	for name, corrupt := range map[string]func([]byte) []byte{
		"bad crc":     func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"crc field":   func(b []byte) []byte { b[8] ^= 1; return b }, // the payload is fine
		"wrong magic": func(b []byte) []byte { b[0] ^= 0xff; return b },
		"truncated":   func(b []byte) []byte { return b[:7] },
		"empty":       func(b []byte) []byte { return nil },
		"bad json": func([]byte) []byte {
			r, _ := manifest.EncodeBlob([]byte(`{"backup-type": "vm",`), false)
			return r
		},
	} {
		good, err := os.ReadFile(p)
		must(t, err)
		bad := corrupt(append([]byte(nil), good...))
		must(t, os.WriteFile(p, bad, 0o644))
		err = s.SetNotes(context.Background(), sn, "never")
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
		if _, _, err := s.Manifest(sn); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Manifest: %v, want ErrCorrupt", name, err)
		}
		now, _ := os.ReadFile(p)
		if !bytes.Equal(now, bad) {
			t.Errorf("%s: corrupt manifest was rewritten", name)
		}
		assertNoTemps(t, filepath.Join(s.Path(), sn.Dir()))
		must(t, os.WriteFile(p, good, 0o644))
	}
	if err := s.SetNotes(context.Background(), snap(nil, "vm", "100", "2031-01-01T00:00:00Z"), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing snapshot: %v", err)
	}
	unf := snap(nil, "vm", "100", "2024-01-01T00:00:00Z")
	must(t, s.MakeSnapshotDir(unf))
	if err := s.SetNotes(context.Background(), unf, "x"); !errors.Is(err, ErrUnfinished) {
		t.Errorf("unfinished snapshot: %v", err)
	}
	if err := s.SetNotes(context.Background(), Snapshot{Group: Group{Type: "vm", ID: "../x"}, Time: testTime}, "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	s := newStore(t, "run")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "x")
	ro, err := Open(s.Path(), Options{ReadOnly: true, Lock: s.lockConfigForTest()})
	must(t, err)
	defer ro.Close()
	for name, err := range map[string]error{
		"notes":       ro.SetNotes(context.Background(), sn, "y"),
		"group notes": ro.SetGroupNotes(context.Background(), sn.Group, "y"),
		"remove":      ro.RemoveSnapshot(context.Background(), sn),
		"rm group":    ro.RemoveGroup(sn.Group),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", name, err)
		}
	}
}

func TestGroupNotesAndOwner(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(nil, "ct", "200", testTime)
			addSnapshot(t, s, sn, "")
			g := sn.Group
			notes, st, err := s.GroupNotes(g)
			must(t, err)
			if notes != "" || !st.IsZero() {
				t.Errorf("absent notes: %q %v", notes, st)
			}
			owner, _, err := s.GroupOwner(g)
			must(t, err)
			if owner != "root@pam\n" {
				t.Errorf("owner %q", owner)
			}
			must(t, s.SetGroupNotes(context.Background(), g, "group ✓"))
			p := filepath.Join(s.Path(), g.Dir(), GroupNotesName)
			data, err := os.ReadFile(p)
			must(t, err)
			if string(data) != "group ✓" {
				t.Errorf("file = %q", data)
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("new notes mode %v", fi.Mode())
			}
			must(t, os.Chmod(p, 0o600))
			must(t, s.ReplaceGroupNotes(context.Background(), g, ptr("group ✓"), "second"))
			fi, _ = os.Stat(p)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode not kept: %v", fi.Mode())
			}
			if err := s.ReplaceGroupNotes(context.Background(), g, ptr("stale"), "x"); !errors.Is(err, ErrStale) {
				t.Errorf("stale: %v", err)
			}
			if err := s.SetGroupNotes(context.Background(), g, "\xff"); !errors.Is(err, ErrInvalid) {
				t.Errorf("invalid utf8: %v", err)
			}
			assertNoTemps(t, filepath.Join(s.Path(), g.Dir()))
		})
	}
}

func TestSymlinksAreNotFollowed(t *testing.T) {
	s := newStore(t, "run")
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "notes"), []byte("secret"), 0o644))
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "")
	g := sn.Group
	must(t, os.Symlink(filepath.Join(outside, "notes"), filepath.Join(s.Path(), g.Dir(), GroupNotesName)))
	if _, _, err := s.GroupNotes(g); err == nil {
		t.Error("group notes symlink was followed")
	}
	if err := s.SetGroupNotes(context.Background(), g, "x"); err == nil {
		t.Error("wrote through a group notes symlink")
	}
	if data, _ := os.ReadFile(filepath.Join(outside, "notes")); string(data) != "secret" {
		t.Error("outside file changed")
	}
	// A whole group that is a symlink to a directory outside the store.
	must(t, os.MkdirAll(filepath.Join(outside, "grp", testTime), 0o755))
	must(t, os.Symlink(filepath.Join(outside, "grp"), filepath.Join(s.Path(), "vm", "666")))
	evil := snap(nil, "vm", "666", testTime)
	if _, err := s.StatSnapshotDir(evil); !errors.Is(err, ErrNotFound) {
		t.Errorf("StatSnapshotDir resolved a symlinked group: %v", err)
	}
	if err := s.RemoveSnapshot(context.Background(), evil); err == nil {
		t.Error("removed through a symlink")
	}
	if _, err := os.Stat(filepath.Join(outside, "grp", testTime)); err != nil {
		t.Error("outside directory was removed")
	}
}

func TestCleanupTemps(t *testing.T) {
	s := newStore(t, "run")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "x")
	leftover := filepath.Join(s.Path(), sn.Dir(), TempPrefix+"index.json.blob.abc")
	must(t, os.WriteFile(leftover, []byte("half"), 0o600))
	other := filepath.Join(s.Path(), sn.Dir(), "index.json.tmp_abc") // PBS's, not ours
	must(t, os.WriteFile(other, []byte("pbs"), 0o600))
	// A lock file's temp file left by a crash (legacy scheme: in the
	// snapshot directory) is removed once old; a fresh one may be in use.
	oldLockTemp := filepath.Join(s.Path(), sn.Dir(), lock.TempPrefix+"old")
	newLockTemp := filepath.Join(s.Path(), sn.Dir(), lock.TempPrefix+"new")
	must(t, os.WriteFile(oldLockTemp, nil, 0o660))
	must(t, os.WriteFile(newLockTemp, nil, 0o660))
	past := time.Now().Add(-2 * lockTempMinAge)
	must(t, os.Chtimes(oldLockTemp, past, past))
	n, err := s.CleanupTemps(t.Context(), 0)
	must(t, err)
	if n != 2 {
		t.Errorf("removed %d files, want 2", n)
	}
	if _, err := os.Stat(oldLockTemp); !errors.Is(err, os.ErrNotExist) {
		t.Error("old lock temp file still there")
	}
	if _, err := os.Stat(newLockTemp); err != nil {
		t.Error("a fresh lock temp file was removed")
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Error("leftover temp still there")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("a file that is not pbsfs's was removed")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr(s string) *string { return &s }

func flipByte(t testing.TB, p string, i int) {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x55
	must(t, os.WriteFile(p, b, 0o644))
}

func assertNoTemps(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) || strings.Contains(e.Name(), "tmp") {
			t.Errorf("temp file left: %s", filepath.Join(dir, e.Name()))
		}
	}
}
