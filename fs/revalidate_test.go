package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbsfs/datastore"
)

// TestSweepShowsOutsideChanges: what PBS changes behind the mount — notes
// edited, a backup finished, a snapshot pruned, group notes replaced — is
// cached by the kernel for the long TTL (checked first, so that the test
// shows the revalidator at work and not a short TTL), and shows through the
// mount right after one revalidation pass.
func TestSweepShowsOutsideChanges(t *testing.T) {
	e := newEnv(t)
	dir := mountEnv(t, e)
	snap := "vm/100/" + tFirst
	const tNew = "2024-06-08T00:00:00Z"
	look := func() string {
		return mustSh(t, dir, "stat -c %s "+snap+"/notes vm/100/notes; ls vm/100; ls vm/100/"+tUnfinished+"; test -e vm/100/"+tSecond+" && echo second-exists; true")
	}
	before := look()
	if !strings.Contains(before, tSecond) || strings.Contains(before, tNew) {
		t.Fatalf("unexpected start: %q", before)
	}

	// PBS's side, not through the mount.
	const newNotes = "edited in the PBS web UI, and longer than before\n"
	if err := e.store.SetNotes(context.Background(), datastore.Snapshot{Group: vm100, Time: tFirst}, newNotes); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetGroupNotes(context.Background(), vm100, "new group notes, longer than the old ones\n"); err != nil {
		t.Fatal(err)
	}
	writeSnap(t, e.store, datastore.Snapshot{Group: vm100, Time: tNew}, "")
	// The running backup finishes: its manifest appears (by rename).
	blob, err := os.ReadFile(filepath.Join(e.base, "vm/100", tSecond, datastore.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(e.base, "vm/100", tUnfinished, "tmp_manifest")
	if err := os.WriteFile(tmp, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.base, "vm/100", tUnfinished, datastore.ManifestName)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.base, "vm/100", tSecond)); err != nil {
		t.Fatal(err)
	}

	// The kernel still has the file sizes and the pruned snapshot's entry.
	// (Listings are cached too, but the kernel itself checks a listed
	// directory's mtime when ls stats it, so those may already be fresh.)
	cached := func() string {
		return mustSh(t, dir, "stat -c %s "+snap+"/notes vm/100/notes; test -e vm/100/"+tSecond+" && echo second-exists; true")
	}
	if got := cached(); got != "23\n12\nsecond-exists\n" {
		t.Fatalf("the kernel did not cache the view (TTL %v): %q", e.fs.ttl, got)
	}
	if n := e.fs.Sweep(context.Background()); n < 3 {
		t.Errorf("Sweep looked at %d directories", n)
	}
	got := look()
	want := "49\n42\n" + // sizes of the new snapshot and group notes
		"2024-06-04T00:00:00Z\n" + tFirst + "\n" + tUnfinished + "\n" + tNew + "\nnotes\nowner\n" +
		"manifest.json\nnotes\n" // the finished snapshot lists its files
	if got != want {
		t.Errorf("after a revalidation pass:\n%s\nwant:\n%s", got, want)
	}
	if got := mustSh(t, dir, "cat "+snap+"/notes"); got != newNotes {
		t.Errorf("notes read %q, want %q", got, newNotes)
	}
}

// TestSweepSpreadsSnapshotDirectories: with a stride of 3, three passes
// check every snapshot directory exactly once, and every pass checks all
// the other directories.
func TestSweepSpreadsSnapshotDirectories(t *testing.T) {
	e := newEnv(t)
	lookupAll(t, e.fs.root)
	ctx := context.Background()
	full := e.fs.sweepPass(ctx, 0, 1)
	others := full.stats - full.snapshots
	if full.snapshots < 5 || others < 5 {
		t.Fatalf("full pass: %+v", full)
	}
	checked := 0
	for pass := uint64(7); pass < 10; pass++ {
		p := e.fs.sweepPass(ctx, pass, 3)
		if p.snapshots != full.snapshots {
			t.Errorf("pass %d saw %d snapshot directories, want %d", pass, p.snapshots, full.snapshots)
		}
		checked += p.stats - others
	}
	if checked != full.snapshots {
		t.Errorf("three passes with stride 3 checked %d snapshot directories, want %d", checked, full.snapshots)
	}
}

// TestNotesReadFreshBeforeRevalidation: notes and manifest.json reads
// (notesFile.Open, manifestFile.Open) are never stale, even while the kernel still has the
// old attributes because no revalidation pass ran yet: a longer text is not
// cut to the old size, a shorter one shows no old bytes after its end.
func TestNotesReadFreshBeforeRevalidation(t *testing.T) {
	e := newEnv(t)
	dir := mountEnv(t, e)
	p := "vm/100/" + tFirst + "/notes"
	mp := "vm/100/" + tFirst + "/manifest.json"
	sn := datastore.Snapshot{Group: vm100, Time: tFirst}
	for i, text := range []string{
		"a text much longer than the first one, so that a read cut to the old size would show it\n",
		"short\n",
		"same length\n",
		"other length\n", // the same size as the one before
	} {
		// Twice: the second read may come from the page cache.
		for range 2 {
			mustSh(t, dir, "cat "+p+" "+mp+"; stat -c %s "+p+" "+mp)
		}
		if err := e.store.SetNotes(context.Background(), sn, text); err != nil {
			t.Fatal(err)
		}
		if got := mustSh(t, dir, "cat "+p); got != text {
			t.Errorf("change %d: read %q, want %q", i+1, got, text)
		}
		js, _, err := e.store.ManifestJSON(sn)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustSh(t, dir, "cat "+mp); got != string(js) {
			t.Errorf("change %d: manifest.json read %d bytes, want the %d stored", i+1, len(got), len(js))
		}
		if got := mustSh(t, dir, "cat "+p); got != text {
			t.Errorf("change %d, second read: %q, want %q", i+1, got, text)
		}
	}
	// The first open of a manifest.json whose attributes the kernel got
	// before the change.
	second := datastore.Snapshot{Group: vm100, Time: tSecond}
	mp2 := "vm/100/" + tSecond + "/manifest.json"
	mustSh(t, dir, "stat -c %s "+mp2)
	if err := e.store.SetNotes(context.Background(), second, "notes that make the manifest longer than it was\n"); err != nil {
		t.Fatal(err)
	}
	js, _, err := e.store.ManifestJSON(second)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustSh(t, dir, "cat "+mp2); got != string(js) {
		t.Errorf("first open after a change: manifest.json read %d bytes, want the %d stored", len(got), len(js))
	}
}
