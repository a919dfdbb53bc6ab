package pxar_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// largeTree: dirs directories of files files each, file sizes cycling
// 0..4 KiB.
func largeTree(dirs, files int) *encoder.Node {
	root := dir("", 0o755)
	for d := range dirs {
		sub := dir(fmt.Sprintf("d%04d", d), 0o755)
		for f := range files {
			sub.Children = append(sub.Children, file(fmt.Sprintf("file-%05d.txt", f), 0o644, pattern((d*files+f)%4096, byte(f))))
		}
		root.Children = append(root.Children, sub)
	}
	return root
}

// BenchmarkLargeWalk encodes 20,000 files in 500 directories (v1 and
// split) and walks them cold through the goodbye tables — ReadDir of every
// directory, Lookup of every name, every file read — against decoding the
// same archive sequentially and copying every payload, in the same run.
func BenchmarkLargeWalk(b *testing.B) {
	tree := largeTree(500, 40)
	for _, split := range []bool{false, true} {
		var meta, payload bytes.Buffer
		var err error
		if split {
			err = encoder.WriteSplit(&meta, &payload, tree, encoder.SplitOptions{})
		} else {
			err = encoder.WriteV1(&meta, tree)
		}
		if err != nil {
			b.Fatal(err)
		}
		name := map[bool]string{false: "v1", true: "split"}[split]
		b.Run(name, func(b *testing.B) {
			open := func() *pxar.Archive {
				var p io.ReaderAt
				if split {
					p = bytes.NewReader(payload.Bytes())
				}
				a, err := pxar.Open(bytes.NewReader(meta.Bytes()), int64(meta.Len()), p, int64(payload.Len()), pxar.Options{})
				if err != nil {
					b.Fatal(err)
				}
				return a
			}
			buf := make([]byte, 128<<10)
			var walkT, seqT time.Duration
			entries := 0
			for b.Loop() {
				t0 := time.Now()
				a := open()
				root, _ := a.Root()
				dirs, err := a.ReadDir(root)
				if err != nil {
					b.Fatal(err)
				}
				entries = 1 + len(dirs)
				for _, d := range dirs {
					if _, err := a.Lookup(root, d.Name); err != nil {
						b.Fatal(err)
					}
					kids, err := a.ReadDir(d)
					if err != nil {
						b.Fatal(err)
					}
					for _, k := range kids {
						entries++
						if _, err := a.Lookup(d, k.Name); err != nil {
							b.Fatal(err)
						}
						for off := int64(0); ; off += int64(len(buf)) {
							if _, err := a.ReadAt(k, buf, off); err == io.EOF {
								break
							} else if err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				t1 := time.Now()
				n, err := pxar.SeqWalkCount(open(), buf)
				if err != nil || n != entries {
					b.Fatalf("sequential walk: %d entries, %v; tree walk %d", n, err, entries)
				}
				walkT += t1.Sub(t0)
				seqT += time.Since(t1)
			}
			b.ReportMetric(float64(walkT.Nanoseconds())/float64(b.N*entries), "walk-ns/entry")
			b.ReportMetric(float64(seqT.Nanoseconds())/float64(b.N*entries), "seq-ns/entry")
			b.ReportMetric(float64(walkT)/float64(seqT), "walk/seq")
			b.ReportMetric(float64(meta.Len()+payload.Len())/(1<<20), "MiB")
		})
	}
}
