package datastore

import (
	"fmt"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Benchmarks of the per-request work pbsfs does on every FUSE lookup and
// getattr of a snapshot directory or of its notes and manifest.json.

// benchSnapshots makes a store with n snapshots in one namespace-nested
// group (paths as deep as in real stores) and returns them.
func benchSnapshots(b *testing.B, n int) (*Store, []Snapshot) {
	s := newStore(b, "run")
	var sns []Snapshot
	for i := 0; i < n; i++ {
		sn := snap(NS{"tenant"}, "vm", "100", fmt.Sprintf("2024-06-%02dT00:00:00Z", i+1))
		addSnapshot(b, s, sn, "notes")
		sns = append(sns, sn)
	}
	return s, sns
}

func BenchmarkStatSnapshotDir(b *testing.B) {
	s, sns := benchSnapshots(b, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.StatSnapshotDir(sns[i%len(sns)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkManifestStamp(b *testing.B) {
	s, sns := benchSnapshots(b, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.ManifestStamp(sns[i%len(sns)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkManifestCached is a manifest request served from the cache (one
// stat of the blob).
func BenchmarkManifestCached(b *testing.B) {
	s, sns := benchSnapshots(b, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.Manifest(sns[i%len(sns)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkManifestUncached reads and decodes the blob every time (cache of
// one entry, two snapshots alternating).
func BenchmarkManifestUncached(b *testing.B) {
	s, sns := benchSnapshots(b, 2)
	c, err := lru.New[FileID, *cachedManifest](1)
	if err != nil {
		b.Fatal(err)
	}
	s.cache = c
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.Manifest(sns[i%len(sns)]); err != nil {
			b.Fatal(err)
		}
	}
}
