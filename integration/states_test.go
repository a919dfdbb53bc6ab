package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"pbsfs/demo"
	"pbsfs/manifest"
)

// TestUnfinishedAndCorrupt: snapshots without a manifest and with a broken
// one are listed; their files fail as documented (unfinished: empty
// directory, ENOENT; corrupt: notes and manifest.json listed, EIO); the
// sibling snapshots are unaffected.
func TestUnfinishedAndCorrupt(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	group := filepath.Join(store, "vm/100")
	good, err := os.ReadFile(filepath.Join(group, "2024-06-01T02:00:04Z", "index.json.blob"))
	if err != nil {
		t.Fatal(err)
	}
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-3] ^= 0x5a
	notJSON, err := manifest.EncodeBlob([]byte(`{"backup-type": "vm", "files": [`), true)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := map[string][]byte{
		"2024-06-05T02:00:00Z": badCRC,
		"2024-06-06T02:00:00Z": []byte("this is not a data blob at all"),
		"2024-06-07T02:00:00Z": notJSON,
		"2024-06-08T02:00:00Z": {},
	}
	for name, raw := range corrupt {
		if err := os.Mkdir(filepath.Join(group, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(group, name, "index.json.blob"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := startMount(t, store)

	names, err := readNames(m.path("vm/100"))
	if err != nil {
		t.Fatal(err)
	}
	want := expectedNames(t, store, "vm/100")
	if !equalStrings(names, want) || len(want) != 2+4+4 {
		t.Errorf("ls vm/100 = %q, want %q", names, want)
	}

	// Unfinished: listed, empty, its files do not exist.
	if ents, err := readNames(m.path(demo.SampleUnfinished)); err != nil || len(ents) != 0 {
		t.Errorf("ls unfinished: %q, %v", ents, err)
	}
	for _, f := range []string{"notes", "manifest.json"} {
		_, err := os.Stat(m.path(demo.SampleUnfinished, f))
		wantErrno(t, "stat unfinished "+f, err, syscall.ENOENT)
		_, err = os.ReadFile(m.path(demo.SampleUnfinished, f))
		wantErrno(t, "read unfinished "+f, err, syscall.ENOENT)
	}

	// Corrupt: listed with both files; reading and writing fail with EIO and
	// change nothing.
	for name, raw := range corrupt {
		rel := "vm/100/" + name
		if ents, err := readNames(m.path(rel)); err != nil || !equalStrings(ents, []string{"manifest.json", "notes"}) {
			t.Errorf("ls %s: %q, %v", rel, ents, err)
		}
		for _, f := range []string{"notes", "manifest.json"} {
			_, err := os.ReadFile(m.path(rel, f))
			wantErrno(t, "read "+rel+"/"+f, err, syscall.EIO)
		}
		err := os.WriteFile(m.path(rel, "notes"), []byte("x\n"), 0o644)
		wantErrno(t, "write "+rel+"/notes", err, syscall.EIO)
		after, _ := os.ReadFile(filepath.Join(group, name, "index.json.blob"))
		if !bytes.Equal(after, raw) {
			t.Errorf("%s: corrupt manifest rewritten", rel)
		}
	}

	// Siblings are fine.
	for _, rel := range []string{
		"vm/100/2024-06-01T02:00:04Z/notes", "vm/100/2024-06-01T02:00:04Z/manifest.json",
		demo.SampleProtected + "/notes", "vm/100/2024-06-03T02:00:05Z/manifest.json",
		"vm/100/notes", "vm/100/owner",
	} {
		got, err := os.ReadFile(m.path(rel))
		if err != nil || !bytes.Equal(got, expectedContent(t, store, rel)) {
			t.Errorf("read %s: %q, %v", rel, got, err)
		}
	}
	mustSh(t, m.path("vm/100/2024-06-03T02:00:05Z"), "echo still writable > notes")
	if mm, _ := loadManifest(t, store, "vm/100/2024-06-03T02:00:05Z"); mm.Notes() != "still writable\n" {
		t.Errorf("sibling notes: %q", mm.Notes())
	}
}
