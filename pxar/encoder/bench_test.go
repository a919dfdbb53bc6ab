package encoder

import (
	"io"
	"testing"
)

// Encoding 100 files of 1 MiB (the client test's tree) against copying the
// same file contents from their readers (the baseline: what any archiver
// must do). Compare the MB/s of the three in one run:
//
//	go test -run '^$' -bench . ./pxar/encoder/
func BenchmarkEncode(b *testing.B) {
	root, files := clientTree()
	b.Run("copy-baseline", func(b *testing.B) {
		b.SetBytes(int64(len(files)) << 20)
		for b.Loop() {
			for _, f := range files {
				r, _ := f.Open()
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("v1", func(b *testing.B) {
		b.SetBytes(int64(len(files)) << 20)
		for b.Loop() {
			if err := WriteV1(io.Discard, root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("split", func(b *testing.B) {
		b.SetBytes(int64(len(files)) << 20)
		for b.Loop() {
			if err := WriteSplit(io.Discard, io.Discard, root, SplitOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
