package fs

import (
	"context"
	"path/filepath"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/lock"
)

// BenchmarkSweep measures one revalidation pass over a store of 10,000
// snapshots whose every directory has been looked up (as after `ls -lR`),
// in-process: the stats it makes, without kernel notifications. The
// revalidator's pause after a pass is sweepCPUShare times this.
func BenchmarkSweep(b *testing.B) {
	dir := b.TempDir()
	base := filepath.Join(dir, "store")
	if _, err := demo.Large(base, demo.LargeOptions{Groups: 100, SnapshotsPerGroup: 100, Namespaces: 3, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	st, err := datastore.Open(base, datastore.Options{
		Lock:     lock.Config{Scheme: lock.Run, Dir: filepath.Join(dir, "locks"), Store: "bench", UID: -1, GID: -1},
		ReadOnly: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	f := New(st, Options{})
	dirs := lookupAll(b, f.root)
	b.ResetTimer()
	for b.Loop() {
		if n := f.Sweep(context.Background()); n != dirs {
			b.Fatalf("swept %d directories, looked up %d", n, dirs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(dirs), "ns/dir")
}

// lookupAll looks up every entry below d, as a walk through the kernel
// would, and returns the number of directories (d included). Files that
// fail to look up are passed over.
func lookupAll(b testing.TB, d dirNode) int {
	ctx := context.Background()
	ents, err := d.ReadDirAll(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := 1
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." {
			continue
		}
		var resp fuse.LookupResponse
		c, err := d.(fusefs.NodeRequestLookuper).Lookup(ctx, &fuse.LookupRequest{Name: e.Name}, &resp)
		if err != nil {
			if e.Type == fuse.DT_Dir {
				b.Fatalf("lookup %s in %s: %v", e.Name, d.base().display(), err)
			}
			continue // a file of a corrupt snapshot (the test fixture has one)
		}
		if cd, ok := c.(dirNode); ok {
			n += lookupAll(b, cd)
		}
	}
	return n
}
