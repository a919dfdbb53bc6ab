package s3store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchSnapshots sizes the walk benchmark's bucket
// ($PBSFS_S3_BENCH_SNAPSHOTS, default 10,000: 100 groups × 100 snapshots).
func benchSnapshots() int {
	if n, err := strconv.Atoi(os.Getenv("PBSFS_S3_BENCH_SNAPSHOTS")); err == nil && n >= 100 {
		return n / 100 * 100
	}
	return 10000
}

var benchStore struct {
	once  sync.Once
	local string
	loc   Location
	n     int
	err   error
}

// benchSetup writes the same tree twice: as objects in a bucket (one
// index.json.blob per snapshot, the key PBS lists) and as a local directory
// tree, the baseline.
func benchSetup(b *testing.B) (Endpoint, Location, string, int) {
	s := srv.Need(b)
	benchStore.once.Do(func() {
		n := benchSnapshots()
		benchStore.n = n
		benchStore.loc = Location{Bucket: "bench", Store: "many" + strconv.Itoa(n)}
		dir, err := os.MkdirTemp("", "pbsfs-s3-bench-")
		if err != nil {
			benchStore.err = err
			return
		}
		benchStore.local = dir
		w, err := New(endpointOf(s), benchStore.loc, Options{})
		if err != nil {
			benchStore.err = err
			return
		}
		defer w.Close()
		if err := w.CreateBucket(context.Background()); err != nil {
			benchStore.err = err
			return
		}
		start := time.Now()
		keys := make(chan string)
		errs := make(chan error, 16)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range keys {
					if err := w.Put(context.Background(), ".cnt/"+k, []byte("manifest")); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for i := range n {
			g, sn := 1000+i/100, i%100
			ts := time.Unix(1700000000+int64(sn)*86400, 0).UTC().Format("2006-01-02T15:04:05Z")
			rel := fmt.Sprintf("vm/%d/%s/index.json.blob", g, ts)
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
				benchStore.err = err
				break
			}
			if err := os.WriteFile(filepath.Join(dir, rel), []byte("manifest"), 0o644); err != nil {
				benchStore.err = err
				break
			}
			keys <- rel
		}
		close(keys)
		wg.Wait()
		close(errs)
		for err := range errs {
			benchStore.err = err
		}
		b.Logf("uploaded %d snapshots in %v", n, time.Since(start).Round(time.Millisecond))
	})
	if benchStore.err != nil {
		b.Fatal(benchStore.err)
	}
	return endpointOf(s), benchStore.loc, benchStore.local, benchStore.n
}

// walkBucket lists root → vm → every group: what `ls` of every group
// directory of a mount asks. It returns the snapshots seen.
func walkBucket(b *testing.B, bk *Bucket) int {
	n := 0
	groups, err := bk.ReadDir(context.Background(), "vm")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bk.ReadDir(context.Background(), ""); err != nil {
		b.Fatal(err)
	}
	for _, g := range groups {
		snaps, err := bk.ReadDir(context.Background(), "vm/"+g.Name)
		if err != nil {
			b.Fatal(err)
		}
		n += len(snaps)
	}
	return n
}

func walkLocal(b *testing.B, dir string) int {
	n := 0
	if _, err := os.ReadDir(dir); err != nil {
		b.Fatal(err)
	}
	groups, err := os.ReadDir(filepath.Join(dir, "vm"))
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range groups {
		snaps, err := os.ReadDir(filepath.Join(dir, "vm", g.Name()))
		if err != nil {
			b.Fatal(err)
		}
		n += len(snaps)
	}
	return n
}

// BenchmarkWalk walks every group of a bucket with many snapshots cold (a
// new Bucket: every level listed) and warm (within the recheck interval:
// from the cache), against the same tree on local disk walked with
// os.ReadDir in the same run (the local walk is warm in the page cache).
// Reported: each walk's time, the ratios to the local walk, and requests
// per snapshot of a cold walk.
func BenchmarkWalk(b *testing.B) {
	e, loc, local, n := benchSetup(b)
	var cold, warm, base time.Duration
	var reqs int64
	warmBucket, err := Open(context.Background(), e, loc, Options{Recheck: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer warmBucket.Close()
	walkBucket(b, warmBucket)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if got := walkLocal(b, local); got != n {
			b.Fatalf("local walk saw %d snapshots", got)
		}
		base += time.Since(t0)

		bk, err := New(e, loc, Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if got := walkBucket(b, bk); got != n {
			b.Fatalf("cold walk saw %d snapshots, want %d", got, n)
		}
		cold += time.Since(t0)
		reqs += bk.Requests()
		bk.Close()

		t0 = time.Now()
		if got := walkBucket(b, warmBucket); got != n {
			b.Fatalf("warm walk saw %d snapshots", got)
		}
		warm += time.Since(t0)
	}
	N := float64(b.N)
	b.ReportMetric(float64(cold.Milliseconds())/N, "cold-ms/walk")
	b.ReportMetric(float64(warm.Microseconds())/N, "warm-µs/walk")
	b.ReportMetric(float64(base.Microseconds())/N, "local-µs/walk")
	b.ReportMetric(float64(cold)/float64(base), "cold/local")
	b.ReportMetric(float64(warm)/float64(base), "warm/local")
	b.ReportMetric(float64(reqs)/N/float64(n), "req/snapshot-cold")
	b.ReportMetric(float64(n), "snapshots")
}
