package demo

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbsfs/manifest"
)

// countStore walks a datastore and counts namespaces, groups and snapshots;
// every index.json.blob must load.
func countStore(t *testing.T, base string) (nss, groups, snaps int) {
	t.Helper()
	nss = 1
	err := filepath.WalkDir(base, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		if rel == ".chunks" {
			return filepath.SkipDir
		}
		parts := strings.Split(rel, "/")
		// strip namespace prefixes
		for len(parts) >= 2 && parts[0] == "ns" {
			if len(parts) == 2 && de.IsDir() {
				nss++
			}
			parts = parts[2:]
		}
		switch {
		case de.IsDir() && len(parts) == 2 && parts[0] != "ns":
			groups++
		case !de.IsDir() && len(parts) == 4 && parts[3] == "index.json.blob":
			snaps++
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m, err := manifest.Load(raw)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
			} else if m.BackupType() != parts[0] || m.BackupID() != parts[1] || snapshotTime(m.BackupTime()) != parts[2] {
				t.Errorf("%s: manifest names %s/%s/%d", rel, m.BackupType(), m.BackupID(), m.BackupTime())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nss, groups, snaps
}

func TestLarge(t *testing.T) {
	base := filepath.Join(t.TempDir(), "store")
	o := LargeOptions{Namespaces: 2, Groups: 11, SnapshotsPerGroup: 7, Seed: 42}
	sum, err := Large(base, o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Namespaces != 3 || sum.Groups != 11 || sum.Snapshots != 77 {
		t.Errorf("summary %+v", sum)
	}
	nss, groups, snaps := countStore(t, base)
	if nss != 3 || groups != 11 || snaps != 77 {
		t.Errorf("on disk: %d namespaces, %d groups, %d snapshots; want 3, 11, 77", nss, groups, snaps)
	}
	for _, n := range sum.Notes {
		snap := strings.TrimSuffix(n, "/notes")
		raw, err := os.ReadFile(filepath.Join(base, snap, "index.json.blob"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Load(raw)
		if err != nil || m.Notes() == "" {
			t.Errorf("%s: notes %q, %v", n, m.Notes(), err)
		}
	}

	// Same seed, same content.
	base2 := filepath.Join(t.TempDir(), "store")
	if _, err := Large(base2, o); err != nil {
		t.Fatal(err)
	}
	for _, n := range sum.Notes {
		p := strings.TrimSuffix(n, "/notes") + "/index.json.blob"
		a, _ := os.ReadFile(filepath.Join(base, p))
		b, err := os.ReadFile(filepath.Join(base2, p))
		if err != nil || string(a) != string(b) {
			t.Errorf("%s differs between two runs with the same seed (%v)", p, err)
		}
	}
}

func TestLargeDefaultsAndErrors(t *testing.T) {
	if _, err := Large(t.TempDir(), LargeOptions{Groups: -1}); err == nil {
		t.Error("negative Groups accepted")
	}
	if testing.Short() {
		t.Skip("short")
	}
	sum, err := Large(filepath.Join(t.TempDir(), "s"), LargeOptions{SnapshotsPerGroup: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Groups != DefaultLargeGroups || sum.Snapshots != 2*DefaultLargeGroups || sum.Namespaces != 1 {
		t.Errorf("summary %+v", sum)
	}
}

// TestLarge100k measures the benchmark store size the README quotes. It runs
// only with PBSFS_TEST_LARGE=1 (it writes 100,000 manifests).
func TestLarge100k(t *testing.T) {
	if os.Getenv("PBSFS_TEST_LARGE") != "1" {
		t.Skip("set PBSFS_TEST_LARGE=1 to write 100,000 snapshots")
	}
	base := filepath.Join(t.TempDir(), "store")
	start := time.Now()
	sum, err := Large(base, LargeOptions{Namespaces: 4, Groups: 1000, SnapshotsPerGroup: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("Large: %d snapshots in %d groups written in %v (%.0f snapshots/s)", sum.Snapshots, sum.Groups, el, float64(sum.Snapshots)/el.Seconds())
	if sum.Snapshots != 100000 {
		t.Errorf("snapshots = %d", sum.Snapshots)
	}
	if el > 2*time.Minute {
		t.Errorf("took %v, budget 2 minutes", el)
	}
	_, groups, snaps := countStore(t, base)
	if groups != 1000 || snaps != 100000 {
		t.Errorf("on disk: %d groups, %d snapshots", groups, snaps)
	}
}
