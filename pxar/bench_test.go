package pxar

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// BenchmarkWalkRead walks the v1 fixture cold through its goodbye tables
// (ReadDir of every directory, every file read in 128 KiB pieces) and, in
// the same run, decodes it sequentially from first to last byte copying
// every payload — what an extractor does. It reports both times and their
// ratio (walk/sequential).
func BenchmarkWalkRead(b *testing.B) {
	for _, f := range fixtures[:2] {
		b.Run(f.name, func(b *testing.B) {
			meta := readTestdata(b, f.meta)
			var payload []byte
			if f.payload != nil {
				payload = readTestdata(b, "pxar-crate-v2.ppxar")
			}
			open := func() *Archive {
				var p io.ReaderAt
				if payload != nil {
					p = bytes.NewReader(payload)
				}
				a, err := Open(bytes.NewReader(meta), int64(len(meta)), p, int64(len(payload)), Options{})
				if err != nil {
					b.Fatal(err)
				}
				return a
			}
			buf := make([]byte, 128<<10)
			var walkT, seqT time.Duration
			for b.Loop() {
				t0 := time.Now()
				a := open()
				tree, err := treeWalk(a)
				if err != nil {
					b.Fatal(err)
				}
				for _, w := range tree {
					if w.e.Kind == KindFile {
						if err := drain(a, w.e, buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				t1 := time.Now()
				a = open()
				seq, err := seqWalk(a)
				if err != nil {
					b.Fatal(err)
				}
				src := a.meta
				if payload != nil {
					src = a.payload
				}
				for _, w := range seq {
					if w.e.Kind == KindFile {
						for off := uint64(0); off < w.e.Size; off += uint64(len(buf)) {
							n := min(uint64(len(buf)), w.e.Size-off)
							if _, err := src.ReadAt(buf[:n], int64(w.e.data.off+off)); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				walkT += t1.Sub(t0)
				seqT += time.Since(t1)
			}
			b.ReportMetric(float64(walkT.Nanoseconds())/float64(b.N), "walk-ns/op")
			b.ReportMetric(float64(seqT.Nanoseconds())/float64(b.N), "seq-ns/op")
			b.ReportMetric(float64(walkT)/float64(seqT), "walk/seq")
		})
	}
}

// BenchmarkReadFile reads the 1 MiB files of the real split fixture in
// 128 KiB pieces through Archive.ReadAt and, in the same run, straight from
// the payload stream at the same offsets; it reports the ratio of the
// speeds (1.0 = no overhead).
func BenchmarkReadFile(b *testing.B) {
	a, _ := openFixture(b, fixtures[2], Options{})
	f, err := lookupPath(a, "/folder_3/file_7")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	var viaT, rawT time.Duration
	b.SetBytes(int64(f.Size))
	for b.Loop() {
		t0 := time.Now()
		for off := int64(0); off < int64(f.Size); off += int64(len(buf)) {
			if _, err := a.ReadAt(f, buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for off := int64(0); off < int64(f.Size); off += int64(len(buf)) {
			if _, err := a.payload.ReadAt(buf, int64(f.data.off)+off); err != nil {
				b.Fatal(err)
			}
		}
		viaT += t1.Sub(t0)
		rawT += time.Since(t1)
	}
	b.ReportMetric(float64(rawT)/float64(viaT), "speed-vs-raw")
}

// drain reads a file through buf, discarding the bytes.
func drain(a *Archive, e *Entry, buf []byte) error {
	for off := int64(0); ; {
		n, err := a.ReadAt(e, buf, off)
		off += int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
