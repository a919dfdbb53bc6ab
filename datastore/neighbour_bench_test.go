package datastore

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"pbsfs/activeops"
	"pbsfs/lock"
)

// BenchmarkPBSGuardStat measures what following PBS's rules costs a
// request once the store is in use: a snapshot-directory stat through a
// store opened with Options.PBS (root descriptor behind the guard's mutex
// and user count), against the same stat through a store without it, on
// the same directory in the same run. It reports both in ns/stat and their
// ratio (x-baseline). Opening an idle store (config lock, datastore.cfg,
// registration) is not in it: that happens once per second of activity at
// most.
func BenchmarkPBSGuardStat(b *testing.B) {
	plain, sns := benchSnapshots(b, 8)
	cfgDir := b.TempDir()
	cfg := "datastore: test\n\tpath " + plain.Path() + "\n"
	if err := os.WriteFile(filepath.Join(cfgDir, "datastore.cfg"), []byte(cfg), 0o640); err != nil {
		b.Fatal(err)
	}
	guarded, err := Open(plain.Path(), Options{
		Lock: lock.Config{Scheme: lock.Run, Dir: b.TempDir(), Store: "test", UID: -1, GID: -1},
		PBS: &PBSOptions{ConfigDir: cfgDir, Name: "test", UID: -1, GID: -1, Linger: time.Hour,
			ActiveOps: activeops.Options{Dir: filepath.Join(b.TempDir(), "ao"), UID: -1, GID: -1}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer guarded.Close()
	if _, err := guarded.StatSnapshotDir(sns[0]); err != nil { // activate
		b.Fatal(err)
	}
	const batch = 64
	var tPlain, tGuarded time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for _, s := range []*Store{plain, guarded} {
			start := time.Now()
			for j := range batch {
				if _, err := s.StatSnapshotDir(sns[j%len(sns)]); err != nil {
					b.Fatal(err)
				}
			}
			if s == plain {
				tPlain += time.Since(start)
			} else {
				tGuarded += time.Since(start)
			}
		}
	}
	n := float64((b.N + batch - 1) / batch * batch)
	b.ReportMetric(float64(tPlain.Nanoseconds())/n, "ns/stat-baseline")
	b.ReportMetric(float64(tGuarded.Nanoseconds())/n, "ns/stat-pbs")
	b.ReportMetric(float64(tGuarded)/float64(tPlain), "x-baseline")
}
