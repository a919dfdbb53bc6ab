package integration

import (
	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pbsfs/demo"
	"pbsfs/manifest"
)

// backupIDs returns the uid and gid of backup:backup (34:34 on Debian if
// the user does not exist here; as root any id can be given).
func backupIDs(t *testing.T) (int, int) {
	t.Helper()
	uid, gid := 34, 34
	if u, err := user.Lookup("backup"); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
	}
	if g, err := user.LookupGroup("backup"); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid
}

// fileOwner returns a file's uid, gid and permission bits.
func fileOwner(t *testing.T, p string) (uint32, uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode().Perm()
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown the datastore files to backup:backup")
	}
}

// signedPart captures what a notes edit must never change.
type signedPart struct {
	canonical   []byte
	sig         string
	signed      bool
	unprotected map[string]string // all keys except notes
}

func captureSigned(t *testing.T, m *manifest.Manifest) signedPart {
	t.Helper()
	c, err := m.CanonicalSigned()
	if err != nil {
		t.Fatal(err)
	}
	sp := signedPart{canonical: c, unprotected: map[string]string{}}
	sp.sig, sp.signed = m.Signature()
	for _, k := range m.Unprotected().Keys() {
		if k == "notes" {
			continue
		}
		v, _ := m.Unprotected().Get(k)
		sp.unprotected[k] = string(v)
	}
	return sp
}

func (sp signedPart) check(t *testing.T, what string, m *manifest.Manifest) {
	t.Helper()
	now := captureSigned(t, m)
	if !bytes.Equal(now.canonical, sp.canonical) {
		t.Errorf("%s: signed part changed:\n%s\n%s", what, sp.canonical, now.canonical)
	}
	if now.sig != sp.sig || now.signed != sp.signed {
		t.Errorf("%s: signature %q/%v, was %q/%v", what, now.sig, now.signed, sp.sig, sp.signed)
	}
	if len(now.unprotected) != len(sp.unprotected) {
		t.Errorf("%s: unprotected keys %v, were %v", what, now.unprotected, sp.unprotected)
	}
	for k, v := range sp.unprotected {
		if now.unprotected[k] != v {
			t.Errorf("%s: unprotected %s = %s, was %s", what, k, now.unprotected[k], v)
		}
	}
}

// TestNotesWrites edits snapshot and group notes with the shell tools
// people use and checks the result on disk (decoding the manifest
// independently), through the mount, and that nothing else changed: the
// signed part and signature, the other unprotected keys, and the blob's
// owner, group and mode.
func TestNotesWrites(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	store := newStore(t)
	uid, gid := backupIDs(t)
	src := filepath.Join(t.TempDir(), "src.txt")
	if err := os.WriteFile(src, []byte("from cp\nzweite Zeile ✓\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name, script, want string
	}{
		{"redirect", `echo first > notes`, "first\n"},
		{"append", `echo second >> notes`, "first\nsecond\n"},
		{"append again", `printf 'third' >> notes`, "first\nsecond\nthird"},
		{"truncate", `truncate -s 0 notes`, ""},
		{"cp", `cp $SRC notes`, "from cp\nzweite Zeile ✓\n"},
		{"tee", `printf 'tee über 日本\n' | tee notes >/dev/null`, "tee über 日本\n"},
		{"redirect shorter", `printf 'x' > notes`, "x"},
		{"multi-line", `printf 'line 1\n\nline 3\ttab\n' > notes`, "line 1\n\nline 3\ttab\n"},
	}
	for i := range steps {
		steps[i].script = strings.ReplaceAll(steps[i].script, "$SRC", "'"+src+"'")
	}

	for _, snap := range []string{demo.SampleEncrypted, "ns/prod/ns/db/ct/400/2024-06-01T00:30:00Z"} {
		blob := filepath.Join(store, snap, "index.json.blob")
		if err := os.Chown(blob, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(blob, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	groupNotes := filepath.Join(store, "vm/100/notes")
	if err := os.Chown(groupNotes, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(groupNotes, 0o644); err != nil {
		t.Fatal(err)
	}

	m := startMount(t, store)
	idKey := manifest.DeriveIDKey(demo.DemoKey())

	for _, snap := range []string{demo.SampleEncrypted, "ns/prod/ns/db/ct/400/2024-06-01T00:30:00Z"} {
		m0, _ := loadManifest(t, store, snap)
		before := captureSigned(t, m0)
		blob := filepath.Join(store, snap, "index.json.blob")
		for _, st := range steps {
			mustSh(t, m.path(snap), st.script)
			what := snap + " " + st.name
			mm, _ := loadManifest(t, store, snap)
			if mm.Notes() != st.want {
				t.Errorf("%s: notes on disk %q, want %q", what, mm.Notes(), st.want)
			}
			before.check(t, what, mm)
			if before.signed {
				if err := mm.CheckSignature(idKey); err != nil {
					t.Errorf("%s: signature no longer verifies: %v", what, err)
				}
			}
			if u, g, mode := fileOwner(t, blob); u != uint32(uid) || g != uint32(gid) || mode != 0o644 {
				t.Errorf("%s: blob owner %d:%d mode %v, want %d:%d 0644", what, u, g, mode, uid, gid)
			}
			got, err := os.ReadFile(m.path(snap, "notes"))
			if err != nil || string(got) != st.want {
				t.Errorf("%s: notes in the mount %q, %v; want %q", what, got, err, st.want)
			}
			if fi, err := os.Stat(m.path(snap, "notes")); err != nil || fi.Size() != int64(len(st.want)) {
				t.Errorf("%s: stat notes: %v, size %d, want %d", what, err, fi.Size(), len(st.want))
			}
			mj, err := os.ReadFile(m.path(snap, "manifest.json"))
			if err != nil || !bytes.Equal(mj, append(mm.MarshalPretty(), '\n')) {
				t.Errorf("%s: manifest.json does not show the new manifest (%v)", what, err)
			}
		}
		// No temp files left behind in the snapshot directory.
		ents, err := os.ReadDir(filepath.Join(store, snap))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			switch filepath.Ext(e.Name()) {
			case ".blob", ".fidx", ".didx":
			default:
				if e.Name() != ".protected" {
					t.Errorf("%s: stray file %s", snap, e.Name())
				}
			}
		}
	}

	// Group notes are a plain file in the group directory.
	for _, st := range steps {
		mustSh(t, m.path("vm/100"), st.script)
		got, err := os.ReadFile(groupNotes)
		if err != nil || string(got) != st.want {
			t.Errorf("group notes %s: on disk %q, %v; want %q", st.name, got, err, st.want)
		}
		if u, g, mode := fileOwner(t, groupNotes); u != uint32(uid) || g != uint32(gid) || mode != 0o644 {
			t.Errorf("group notes %s: owner %d:%d mode %v, want %d:%d 0644", st.name, u, g, mode, uid, gid)
		}
		got, err = os.ReadFile(m.path("vm/100/notes"))
		if err != nil || string(got) != st.want {
			t.Errorf("group notes %s: in the mount %q, %v; want %q", st.name, got, err, st.want)
		}
	}

	// A group without notes gets a notes file on the first write.
	if _, err := os.Stat(filepath.Join(store, "vm/101/notes")); err == nil {
		t.Fatal("sample changed: vm/101 has group notes")
	}
	mustSh(t, m.path("vm/101"), `echo new group notes > notes`)
	if got, err := os.ReadFile(filepath.Join(store, "vm/101/notes")); err != nil || string(got) != "new group notes\n" {
		t.Errorf("new group notes on disk: %q, %v", got, err)
	}
}
