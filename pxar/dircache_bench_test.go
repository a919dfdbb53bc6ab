package pxar_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// BenchmarkDirCacheShared walks a v1 archive of 50,100 entries (100
// directories of 500 files) through a simulated chunk cache (64 KiB
// chunks, 16 kept) with the datastore's v1 settings, once with the
// Archive's own directory cache and once with a shared DirCache of the
// same bounds, alternating; it reports the chunk loads of each and the
// ratio of the times (shared/own: 1.0 = no cost).
func BenchmarkDirCacheShared(b *testing.B) {
	root := dir("", 0o755)
	for i := range 100 {
		d := dir(fmt.Sprintf("d%03d", i), 0o755)
		for j := range 500 {
			d.Children = append(d.Children, file(fmt.Sprintf("f%03d", j), 0o644, pattern(200, byte(j))))
		}
		root.Children = append(root.Children, d)
	}
	var buf bytes.Buffer
	if err := encoder.WriteV1(&buf, root); err != nil {
		b.Fatal(err)
	}
	meta := buf.Bytes()
	walk := func(opts pxar.Options) (time.Duration, int) {
		r := &chunkReader{data: meta, chunkSize: 64 << 10, cacheChunks: 16}
		t0 := time.Now()
		a, err := pxar.Open(r, int64(len(meta)), nil, 0, opts)
		if err != nil {
			b.Fatal(err)
		}
		var list func(d *pxar.Entry)
		list = func(d *pxar.Entry) {
			kids, err := a.ReadDir(d)
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range kids {
				if k.IsDir() {
					list(k)
				}
			}
		}
		r0, _ := a.Root()
		list(r0)
		loads, _ := r.counts()
		return time.Since(t0), loads
	}
	var ownT, sharedT time.Duration
	var ownL, sharedL int
	own := func() {
		t, l := walk(pxar.Options{DirCacheSize: 4096, DirCacheEntries: 32768, ScanAhead: 16384})
		ownT, ownL = ownT+t, l
	}
	shared := func() {
		c, err := pxar.NewDirCache(4096, 32768)
		if err != nil {
			b.Fatal(err)
		}
		t, l := walk(pxar.Options{DirCache: c, ScanAhead: 16384})
		sharedT, sharedL = sharedT+t, l
	}
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			own()
			shared()
		} else {
			shared()
			own()
		}
	}
	b.ReportMetric(float64(ownL), "loads-own")
	b.ReportMetric(float64(sharedL), "loads-shared")
	b.ReportMetric(float64(sharedT)/float64(ownT), "shared/own")
	b.ReportMetric(float64((len(meta)+64<<10-1)/(64<<10)), "chunks")
}
