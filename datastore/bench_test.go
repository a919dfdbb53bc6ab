package datastore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
		if err := s.SetNotes(sn, fmt.Sprintf("benchmark notes, version %d, with some more text to be realistic", i)); err != nil {
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

// BenchmarkNotesWriteRatio measures both in the same run, alternating, and
// reports pbsfs's cost as a multiple of the bare write (target ≤ 1.5).
func BenchmarkNotesWriteRatio(b *testing.B) {
	const rounds = 5
	var tp, tb float64
	for r := 0; r < rounds; r++ {
		tp += float64(testing.Benchmark(benchSetNotes).NsPerOp())
		tb += float64(testing.Benchmark(benchBareWrite).NsPerOp())
	}
	b.ReportMetric(tp/tb, "x-bare-write")
	b.ReportMetric(tp/rounds/1e3, "µs/notes-write")
	b.ReportMetric(tb/rounds/1e3, "µs/bare-write")
}
