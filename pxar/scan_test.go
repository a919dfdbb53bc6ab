package pxar_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// Options.ScanAhead (scan.go): listings decoded in stream order must be
// the listings ReadDir makes from the goodbye tables, errors included; the
// stream is read forward once, file payloads not at all; memory stays
// within the bounds.

// scanOpts turns the scan on with room for the test trees.
var scanOpts = pxar.Options{DirCacheSize: 4096, DirCacheEntries: 1 << 16, ScanAhead: 1 << 15}

// chunkReader reads a byte slice and counts the "chunks" of chunkSize
// bytes it is asked for the way a chunk cache of cacheChunks chunks would
// load them, and records every range read.
type chunkReader struct {
	data        []byte
	chunkSize   int
	cacheChunks int

	mu     sync.Mutex
	cache  []int // most recent last
	loads  int
	ranges [][2]int64
}

func (r *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.ranges = append(r.ranges, [2]int64{off, off + int64(len(p))})
	for c := int(off) / r.chunkSize; c*r.chunkSize < int(off)+len(p) && c*r.chunkSize < len(r.data); c++ {
		hit := -1
		for i, x := range r.cache {
			if x == c {
				hit = i
			}
		}
		if hit >= 0 {
			r.cache = append(r.cache[:hit], r.cache[hit+1:]...)
		} else {
			r.loads++
			if len(r.cache) == r.cacheChunks {
				r.cache = r.cache[1:]
			}
		}
		r.cache = append(r.cache, c)
	}
	r.mu.Unlock()
	return bytes.NewReader(r.data).ReadAt(p, off)
}

func (r *chunkReader) counts() (loads, reads int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loads, len(r.ranges)
}

// walkAll lists every directory depth first in name order and returns
// every entry by path.
func walkAll(t *testing.T, a *pxar.Archive) map[string]*pxar.Entry {
	t.Helper()
	root, _ := a.Root()
	out := map[string]*pxar.Entry{"/": root}
	var walk func(path string, d *pxar.Entry)
	walk = func(path string, d *pxar.Entry) {
		kids, err := a.ReadDir(d)
		if err != nil {
			t.Fatalf("ReadDir(%s): %v", path, err)
		}
		for _, k := range kids {
			p := strings.TrimSuffix(path, "/") + "/" + k.Name
			out[p] = k
			if k.IsDir() {
				walk(p, k)
			}
		}
	}
	walk("/", root)
	return out
}

type scanArchive struct {
	name          string
	meta, payload []byte
}

func (s scanArchive) open(t *testing.T, opts pxar.Options) *pxar.Archive {
	t.Helper()
	var p io.ReaderAt
	if s.payload != nil {
		p = bytes.NewReader(s.payload)
	}
	a, err := pxar.Open(bytes.NewReader(s.meta), int64(len(s.meta)), p, int64(len(s.payload)), opts)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	return a
}

func encodeV1(t *testing.T, root *encoder.Node) []byte {
	t.Helper()
	var meta bytes.Buffer
	if err := encoder.WriteV1(&meta, root); err != nil {
		t.Fatal(err)
	}
	return meta.Bytes()
}

// nestedTree: directories three levels deep with files of growing sizes,
// symlinks, a FIFO and hardlinks across directories.
func nestedTree() *encoder.Node {
	root := dir("", 0o755)
	var first *encoder.Node
	for i := range 6 {
		d := dir(fmt.Sprintf("d%d", i), 0o755)
		for j := range 4 {
			sub := dir(fmt.Sprintf("s%d", j), 0o750)
			for k := range 5 {
				f := file(fmt.Sprintf("f%d", k), 0o644, pattern((i*20+j*5+k)*97, byte(k)))
				if first == nil {
					first = f
				}
				sub.Children = append(sub.Children, f)
			}
			sub.Children = append(sub.Children, dir("empty", 0o700),
				&encoder.Node{Name: "link", Mode: pxar.ModeSymlink | 0o777, Symlink: "f0"})
			d.Children = append(d.Children, sub)
		}
		d.Children = append(d.Children, &encoder.Node{Name: "fifo", Mode: pxar.ModeFIFO | 0o600},
			&encoder.Node{Name: "zz-hardlink", HardlinkTo: first})
		root.Children = append(root.Children, d)
	}
	return root
}

func scanArchives(t *testing.T) []scanArchive {
	var out []scanArchive
	for _, f := range []struct{ meta, payload string }{
		{"pxar-crate-v1.pxar", ""}, {"pxar-crate-v2.mpxar", "pxar-crate-v2.ppxar"},
	} {
		a := scanArchive{name: f.meta}
		var err error
		if a.meta, err = os.ReadFile(filepath.Join("testdata", f.meta)); err != nil {
			t.Fatal(err)
		}
		if f.payload != "" {
			if a.payload, err = os.ReadFile(filepath.Join("testdata", f.payload)); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, a)
	}
	sample, _ := sampleTree()
	out = append(out, scanArchive{name: "sample v1", meta: encodeV1(t, sample)})
	var meta, payload bytes.Buffer
	if err := encoder.WriteSplit(&meta, &payload, sample, encoder.SplitOptions{}); err != nil {
		t.Fatal(err)
	}
	out = append(out, scanArchive{name: "sample split", meta: meta.Bytes(), payload: payload.Bytes()})
	out = append(out, scanArchive{name: "nested v1", meta: encodeV1(t, nestedTree())})
	return out
}

// The scan's listings equal those made from the goodbye tables alone, for
// fixtures and encoder archives with every entry kind, v1 and split.
func TestScanAheadListsAsReadDir(t *testing.T) {
	for _, s := range scanArchives(t) {
		t.Run(s.name, func(t *testing.T) {
			want := walkAll(t, s.open(t, pxar.Options{}))
			a := s.open(t, scanOpts)
			got := walkAll(t, a)
			if len(got) != len(want) {
				t.Fatalf("%d entries, without the scan %d", len(got), len(want))
			}
			for p, w := range want {
				if !reflect.DeepEqual(got[p], w) {
					t.Errorf("%s: scanned %+v, from the table %+v", p, got[p], w)
				}
			}
			if _, n := pxar.DirCacheStats(a); n == 0 {
				t.Error("nothing cached")
			}
		})
	}
}

// After the root is listed, the scan has listed every directory: the rest
// of the walk reads nothing. Over the whole walk each 4 KiB "chunk" is
// loaded once into a cache of 8 (without the scan, directories are listed
// one by one and chunks loaded again). The cache holds the reader's 8 KiB
// windows back and ahead, as a chunk cache of 4 MiB chunks does.
func TestScanAheadReadsForwardOnce(t *testing.T) {
	meta := encodeV1(t, nestedTree())
	open := func(opts pxar.Options) (*pxar.Archive, *chunkReader) {
		r := &chunkReader{data: meta, chunkSize: 4096, cacheChunks: 8}
		a, err := pxar.Open(r, int64(len(meta)), nil, 0, opts)
		if err != nil {
			t.Fatal(err)
		}
		return a, r
	}
	chunks := (len(meta) + 4095) / 4096
	a, r := open(scanOpts)
	root, _ := a.Root()
	if _, err := a.ReadDir(root); err != nil {
		t.Fatal(err)
	}
	loads, reads := r.counts()
	walkAll(t, a)
	if l, n := r.counts(); n != reads {
		t.Errorf("the walk after listing the root read %d more times (%d more chunk loads)", n-reads, l-loads)
	}
	// Each of the 6 hardlinks reads its target's 8 KiB window back at the
	// start: up to 3 loads.
	if loads > chunks+18 {
		t.Errorf("scan: %d chunk loads for %d chunks", loads, chunks)
	}
	b, rb := open(pxar.Options{DirCacheSize: 4096})
	walkAll(t, b)
	without, _ := rb.counts()
	t.Logf("%d chunks: %d loads with the scan, %d without", chunks, loads, without)
	if without <= loads {
		t.Errorf("without the scan %d chunk loads, with it %d: the test shows nothing", without, loads)
	}
}

// File payloads are skipped by their size: no read lands inside a large
// file's contents.
func TestScanAheadSkipsPayloads(t *testing.T) {
	big := pattern(1<<20, 7)
	tree := dir("", 0o755, dir("a", 0o755, file("big", 0o644, big), dir("z", 0o755, file("small", 0o644, []byte("x")))), file("b", 0o644, []byte("y")))
	meta := encodeV1(t, tree)
	at := bytes.Index(meta, big[:4096])
	if at < 0 {
		t.Fatal("payload not found")
	}
	r := &chunkReader{data: meta, chunkSize: 4096, cacheChunks: 4}
	a, err := pxar.Open(r, int64(len(meta)), nil, 0, scanOpts)
	if err != nil {
		t.Fatal(err)
	}
	walkAll(t, a)
	lo, hi := int64(at)+16<<10, int64(at+len(big))-16<<10
	for _, rg := range r.ranges {
		if rg[0] < hi && rg[1] > lo {
			t.Errorf("read [%d, %d) inside the payload [%d, %d)", rg[0], rg[1], at, at+len(big))
		}
	}
}

// A scan decodes at most ScanAhead entries per ReadDir, and the directory
// cache holds at most DirCacheEntries children (or one listing larger
// than that).
func TestScanAheadBounds(t *testing.T) {
	meta := encodeV1(t, nestedTree())
	a, err := pxar.Open(bytes.NewReader(meta), int64(len(meta)), nil, 0, pxar.Options{DirCacheSize: 4096, ScanAhead: 10})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := a.Root()
	kids, err := a.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, n := pxar.DirCacheStats(a); n > len(kids)+10 {
		t.Errorf("after listing the root: %d children cached; the root has %d, the scan may add 10", n, len(kids))
	}
	b, err := pxar.Open(bytes.NewReader(meta), int64(len(meta)), nil, 0, pxar.Options{DirCacheSize: 4096, DirCacheEntries: 20, ScanAhead: 1000})
	if err != nil {
		t.Fatal(err)
	}
	walkAll(t, b)
	if d, n := pxar.DirCacheStats(b); n > 20 {
		t.Errorf("after a walk: %d listings with %d children cached, bound 20", d, n)
	}
}

// Damage below a directory fails the listing of the damaged directory
// exactly as without the scan (the same *CorruptError, or the reader's
// error), and nothing else: the directories above still list.
func TestScanAheadDamage(t *testing.T) {
	meta := encodeV1(t, nestedTree())
	var hash [8]byte
	binary.LittleEndian.PutUint64(hash[:], pxar.HashFilename([]byte("f3")))
	damages := map[string]func([]byte) []byte{
		"filename": func(m []byte) []byte {
			// the last FILENAME "f3": in /d5/s3
			i := bytes.LastIndex(m, []byte("f3\x00"))
			m[i+1] = '9'
			return m
		},
		"goodbye hash": func(m []byte) []byte {
			i := bytes.LastIndex(m, hash[:])
			m[i] ^= 1
			return m
		},
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			bad := damage(append([]byte(nil), meta...))
			results := func(opts pxar.Options) []string {
				a, err := pxar.Open(bytes.NewReader(bad), int64(len(bad)), nil, 0, opts)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, p := range []string{"/", "/d5", "/d5/s3", "/d5/s2", "/d4/s3"} {
					e, err := lookup(a, p)
					if err == nil {
						_, err = a.ReadDir(e)
					}
					out = append(out, fmt.Sprintf("%s: %v", p, err))
					var ce *pxar.CorruptError
					if err != nil && (!errors.Is(err, pxar.ErrCorrupt) || !errors.As(err, &ce) || ce.Offset <= 0) {
						t.Errorf("%s: %v is not a CorruptError with an offset", p, err)
					}
				}
				return out
			}
			want, got := results(pxar.Options{}), results(scanOpts)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("with the scan:\n%s\nwithout:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !strings.HasPrefix(want[2], "/d5/s3: pxar: corrupt archive") || want[0] != "/: <nil>" || want[1] != "/d5: <nil>" {
				t.Errorf("damage not where meant: %q", want)
			}
		})
	}
	// A read error inside /d5/s3's files (a damaged chunk) reaches ReadDir
	// of /d5/s3 only, wrapped, with or without the scan.
	errChunk := errors.New("chunk 7 damaged")
	i := bytes.LastIndex(meta, []byte("f3\x00"))
	for _, opts := range []pxar.Options{{}, scanOpts} {
		a, err := pxar.Open(&failRange{data: meta, lo: int64(i), hi: int64(i) + 1, err: errChunk}, int64(len(meta)), nil, 0, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/", "/d5"} {
			e, err := lookup(a, p)
			if err == nil {
				_, err = a.ReadDir(e)
			}
			if err != nil {
				t.Errorf("scan %v: %s: %v", opts.ScanAhead > 0, p, err)
			}
		}
		e, err := lookup(a, "/d5/s3")
		if err == nil {
			_, err = a.ReadDir(e)
		}
		if !errors.Is(err, errChunk) || errors.Is(err, pxar.ErrCorrupt) {
			t.Errorf("scan %v: ReadDir(/d5/s3) = %v, want the read error", opts.ScanAhead > 0, err)
		}
	}
}

// failRange fails every read that touches [lo, hi).
type failRange struct {
	data   []byte
	lo, hi int64
	err    error
}

func (f *failRange) ReadAt(p []byte, off int64) (int, error) {
	if off < f.hi && off+int64(len(p)) > f.lo {
		return 0, f.err
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}
