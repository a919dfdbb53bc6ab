package datastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkNotesWrite compares a notes update (lock, load, CRC, decode,
// re-encode, temp+fsync+rename+dir fsync) with the floor: writing the same
// blob bytes with temp+fsync+rename+dir fsync and nothing else. The ratio is
// printed by BenchmarkNotesWriteRatio.
func BenchmarkNotesWrite(b *testing.B) {
	b.Run("pbsfs-SetNotes", func(b *testing.B) { benchSetNotes(b) })
	b.Run("bare-atomic-write", func(b *testing.B) { benchBareWrite(b) })
}

func benchSetNotes(b *testing.B) {
	s := newStore(b, "run")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(b, s, sn, "")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.SetNotes(context.Background(), sn, fmt.Sprintf("benchmark notes, version %d, with some more text to be realistic", i)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBareWrite(b *testing.B) {
	s := newStore(b, "run")
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(b, s, sn, "benchmark notes, version 0, with some more text to be realistic")
	dir := filepath.Join(s.Path(), sn.Dir())
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bareAtomicWrite(b, dir, ManifestName, raw)
	}
}

func bareAtomicWrite(b *testing.B, dir, name string, data []byte) {
	tmp := filepath.Join(dir, name+".bench-tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		b.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Fsync(int(d.Fd())); err != nil {
		b.Fatal(err)
	}
	d.Close()
}

// BenchmarkNotesWriteRatio alternates the two writes in one loop, on two
// snapshots of the same store, timing each, and reports pbsfs's cost as a
// multiple of the bare write (target ≤ 1.5) next to the absolute figures.
func BenchmarkNotesWriteRatio(b *testing.B) {
	s := newStore(b, "run")
	sn := snap(nil, "vm", "100", testTime)
	bare := snap(nil, "vm", "100", "2024-06-06T00:00:00Z")
	addSnapshot(b, s, sn, "")
	addSnapshot(b, s, bare, "benchmark notes, version 0, with some more text to be realistic")
	dir := filepath.Join(s.Path(), bare.Dir())
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		b.Fatal(err)
	}
	var tp, tb time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := s.SetNotes(context.Background(), sn, fmt.Sprintf("benchmark notes, version %d, with some more text to be realistic", i)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		bareAtomicWrite(b, dir, ManifestName, raw)
		tp += t1.Sub(t0)
		tb += time.Since(t1)
	}
	b.ReportMetric(float64(tp)/float64(tb), "x-bare-write")
	b.ReportMetric(float64(tp.Microseconds())/float64(b.N), "µs/notes-write")
	b.ReportMetric(float64(tb.Microseconds())/float64(b.N), "µs/bare-write")
}
