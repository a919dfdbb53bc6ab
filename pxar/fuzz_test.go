package pxar

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzOpenWalk opens random and mutated archives (metadata stream plus an
// optional payload stream), lists every directory (scanning ahead in
// stream order), looks every listed name up again through the goodbye
// tables of a second Archive, and reads every
// file. Every failure must be ErrCorrupt; nothing may panic; a lookup must
// give exactly what the listing gave; a read never returns more than the
// file's size.
func FuzzOpenWalk(f *testing.F) {
	for _, fx := range fixtures[:2] {
		meta := readTestdata(f, fx.meta)
		var payload []byte
		if fx.payload != nil {
			payload = readTestdata(f, "pxar-crate-v2.ppxar")
		}
		f.Add(meta, payload)
	}
	f.Add(readTestdata(f, "backup-client-pxar-expected.mpxar"), []byte(nil))
	f.Add(flatArchive([]rawChild{{name: []byte("a"), body: fifoBody()}, {name: []byte("b"), body: append(statBytes(ModeRegular|0o644, 0), itemBytes(TypePayload, []byte("hello"))...)}}), []byte(nil))
	f.Add([]byte{}, []byte(nil))
	f.Fuzz(func(t *testing.T, meta, payload []byte) {
		if len(meta) > 4<<20 || len(payload) > 4<<20 {
			return
		}
		open := func(o Options) (*Archive, error) {
			var p io.ReaderAt
			if len(payload) > 0 {
				p = bytes.NewReader(payload)
			}
			return Open(bytes.NewReader(meta), int64(len(meta)), p, int64(len(payload)), o)
		}
		// a lists with the stream-order scan (scan.go), b looks up through
		// the goodbye tables only.
		a, err := open(Options{DirCacheSize: 8, DirCacheEntries: 64, ScanAhead: 32})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && err.Error() != "pxar: a payload stream was given for a v1 archive" {
				t.Fatalf("Open: %v is not ErrCorrupt", err)
			}
			return
		}
		b, err := open(Options{DirCacheSize: 4})
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		root, _ := a.Root()
		type dir struct{ a, b *Entry }
		queue := []dir{{root, root}}
		visited := 0
		var files []*Entry
		for len(queue) > 0 && visited < 20000 {
			d := queue[0]
			queue = queue[1:]
			kids, err := a.ReadDir(d.a)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ReadDir: %v is not ErrCorrupt", err)
				}
				continue
			}
			for _, k := range kids {
				visited++
				lk, err := b.Lookup(d.b, k.Name)
				if err != nil || !reflect.DeepEqual(lk, k) {
					t.Fatalf("Lookup(%q) = %+v, %v; listing gave %+v", k.Name, lk, err, k)
				}
				switch k.Kind {
				case KindDir:
					queue = append(queue, dir{k, lk})
				case KindFile:
					files = append(files, k)
				}
			}
		}
		buf := make([]byte, 4096)
		budget := 8 << 20
		for _, e := range files {
			var total uint64
			for off := int64(0); budget > 0; {
				n, err := a.ReadAt(e, buf, off)
				budget -= n
				total += uint64(n)
				off += int64(n)
				if err == io.EOF {
					if total != e.Size {
						t.Fatalf("%q: read %d bytes, size %d", e.Name, total, e.Size)
					}
					break
				}
				if err != nil {
					if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoPayload) {
						t.Fatalf("ReadAt: %v is not ErrCorrupt", err)
					}
					break
				}
				if total > e.Size {
					t.Fatalf("%q: read %d bytes, size %d", e.Name, total, e.Size)
				}
			}
		}
	})
}
