package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/manifest"
	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// readStream reassembles the stream of a .didx of the sample store,
// decrypting (independently of package manifest) and checking every chunk,
// and returns it with the chunk end offsets.
func readStream(t *testing.T, base, rel string, encrypted bool) ([]byte, []uint64) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(base, rel))
	if err != nil {
		t.Fatal(err)
	}
	dx, err := index.ParseDynamic(raw)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	idKey := manifest.DeriveIDKey(DemoKey())
	var stream []byte
	var ends []uint64
	for _, e := range dx.Entries {
		craw, err := os.ReadFile(filepath.Join(base, index.ChunkPath(e.Digest)))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var data []byte
		if encrypted {
			data = decryptBlob(t, craw, DemoKey())
			if chunkDigest(data, idKey) != e.Digest {
				t.Fatalf("%s: encrypted chunk %x: wrong digest", rel, e.Digest)
			}
		} else {
			if data, err = manifest.DecodeBlob(craw); err != nil {
				t.Fatalf("%s: chunk %x: %v", rel, e.Digest, err)
			}
			if sha256.Sum256(data) != e.Digest {
				t.Fatalf("%s: chunk %x: wrong digest", rel, e.Digest)
			}
		}
		stream = append(stream, data...)
		if uint64(len(stream)) != e.End {
			t.Fatalf("%s: chunk ends at %d, index says %d", rel, len(stream), e.End)
		}
		ends = append(ends, e.End)
	}
	return stream, ends
}

// TestSampleArchives reads every file archive of the sample store back
// from its chunks and compares it with a fresh encoding of the tree
// SampleArchiveOf describes; checks that the tree has every entry kind and
// the attributes the demo promises, that the log file spans several
// chunks, and that consecutive snapshots share chunks.
func TestSampleArchives(t *testing.T) {
	base := filepath.Join(t.TempDir(), "store")
	if _, err := Sample(base); err != nil {
		t.Fatal(err)
	}
	var v1, split, encrypted int
	chunkSets := map[string][]map[[32]byte]bool{} // group → per snapshot
	for _, gs := range sampleGroups() {
		g := datastore.Group{NS: gs.ns, Type: gs.typ, ID: gs.id}
		for _, ss := range gs.snaps {
			snap := datastore.Snapshot{Group: g, Time: ss.time}.Dir()
			sa, ok := SampleArchiveOf(snap)
			if want := (gs.typ == "ct" || gs.typ == "host") && !ss.unfinished; ok != want {
				t.Fatalf("%s: SampleArchiveOf = %v", snap, ok)
			}
			if !ok {
				continue
			}
			if sa.Split != ss.split || sa.Encrypted != ss.encrypted {
				t.Errorf("%s: SampleArchiveOf says split %v, encrypted %v", snap, sa.Split, sa.Encrypted)
			}
			checkTreeCoverage(t, snap, sa.Root)
			want := map[string]*bytes.Buffer{}
			buf := func(name string) *bytes.Buffer { want[name] = &bytes.Buffer{}; return want[name] }
			payloadName := "root.pxar.didx"
			if sa.Split {
				split++
				payloadName = "root.ppxar.didx"
				if err := encoder.WriteSplit(buf("root.mpxar.didx"), buf(payloadName), sa.Root, encoder.SplitOptions{}); err != nil {
					t.Fatal(err)
				}
			} else {
				v1++
				if err := encoder.WriteV1(buf(payloadName), sa.Root); err != nil {
					t.Fatal(err)
				}
				if err := encoder.WriteCatalog(buf("catalog.pcat1.didx"), encoder.CatalogArchive{Name: "root.pxar.didx", Root: sa.Root}); err != nil {
					t.Fatal(err)
				}
			}
			if sa.Encrypted {
				encrypted++
			}
			chunks := map[[32]byte]bool{}
			for name, w := range want {
				got, ends := readStream(t, base, snap+"/"+name, sa.Encrypted)
				if !bytes.Equal(got, w.Bytes()) {
					t.Errorf("%s/%s: the stored stream (%d bytes) differs from a fresh encoding (%d bytes)", snap, name, len(got), w.Len())
				}
				raw, _ := os.ReadFile(filepath.Join(base, snap, name))
				dx, _ := index.ParseDynamic(raw)
				for _, e := range dx.Entries {
					chunks[e.Digest] = true
				}
				if name != payloadName {
					continue
				}
				// The log's contents span several chunks.
				log := findFile(sa.Root, "var", "log", "syslog").Data
				start := bytes.Index(got, log)
				if start < 0 {
					t.Fatalf("%s/%s: syslog contents not in the stream", snap, name)
				}
				inside := 0
				for _, e := range ends {
					if e > uint64(start) && e < uint64(start+len(log)) {
						inside++
					}
				}
				if inside < 2 {
					t.Errorf("%s/%s: syslog (%d bytes) spans %d chunks, want at least 3", snap, name, len(log), inside+1)
				}
			}
			chunkSets[g.Dir()] = append(chunkSets[g.Dir()], chunks)
		}
	}
	if v1 == 0 || split == 0 || encrypted == 0 {
		t.Errorf("%d v1, %d split, %d encrypted archives; want each kind", v1, split, encrypted)
	}
	for _, g := range []string{"ct/200", "ns/prod/ct/310"} {
		sets := chunkSets[g]
		shared := 0
		for d := range sets[1] {
			if sets[0][d] {
				shared++
			}
		}
		if shared == 0 || shared == len(sets[1]) {
			t.Errorf("%s: the second snapshot shares %d of its %d chunks with the first; want some, not all", g, shared, len(sets[1]))
		}
	}
}

func findFile(n *encoder.Node, path ...string) *encoder.Node {
	for _, name := range path {
		i := slices.IndexFunc(n.Children, func(c *encoder.Node) bool { return c.Name == name })
		if i < 0 {
			return &encoder.Node{}
		}
		n = n.Children[i]
	}
	return n
}

// checkTreeCoverage checks that a demo tree has what the demo promises:
// every entry kind, setuid/setgid/sticky bits, xattrs, fcaps, access and
// default ACLs.
func checkTreeCoverage(t *testing.T, snap string, root *encoder.Node) {
	t.Helper()
	have := map[string]bool{}
	var walk func(n *encoder.Node)
	walk = func(n *encoder.Node) {
		if n.HardlinkTo != nil {
			have["hardlink"] = true
			return
		}
		have[map[uint64]string{pxar.ModeDir: "dir", pxar.ModeRegular: "file", pxar.ModeSymlink: "symlink",
			pxar.ModeBlock: "block", pxar.ModeChar: "char", pxar.ModeFIFO: "fifo", pxar.ModeSocket: "socket"}[n.Mode&pxar.ModeTypeMask]] = true
		have["setuid"] = have["setuid"] || n.Mode&0o4000 != 0
		have["setgid"] = have["setgid"] || n.Mode&0o2000 != 0
		have["sticky"] = have["sticky"] || n.Mode&0o1000 != 0
		have["xattr"] = have["xattr"] || len(n.Xattrs) > 0
		have["fcaps"] = have["fcaps"] || n.FCaps != nil
		have["acl"] = have["acl"] || len(n.ACL.Users) > 0
		have["default acl"] = have["default acl"] || n.ACL.Default != nil
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(root)
	for _, k := range []string{"dir", "file", "symlink", "hardlink", "block", "char", "fifo", "socket",
		"setuid", "setgid", "sticky", "xattr", "fcaps", "acl", "default acl"} {
		if !have[k] {
			t.Errorf("%s: the archived tree has no %s", snap, k)
		}
	}
}

func TestCutChunks(t *testing.T) {
	data := []byte(syslogText("cut", 4))
	chunks := cutChunks(data)
	if !bytes.Equal(bytes.Join(chunks, nil), data) {
		t.Fatal("chunks do not concatenate to the stream")
	}
	for i, c := range chunks {
		if len(c) > 256<<10 || (len(c) < 16<<10 && i != len(chunks)-1) {
			t.Errorf("chunk %d: %d bytes", i, len(c))
		}
	}
	if len(chunks) < 4 {
		t.Errorf("%d bytes gave %d chunks", len(data), len(chunks))
	}
	// An insertion near the start changes the first chunks only.
	moved := cutChunks(append([]byte("inserted line\n"), data...))
	if !bytes.Equal(moved[len(moved)-1], chunks[len(chunks)-1]) || !bytes.Equal(moved[len(moved)-2], chunks[len(chunks)-2]) {
		t.Error("an insertion at the start changed the last chunks")
	}
}

// The streaming chunk writer cuts where cutChunks cuts, whatever the sizes
// of the writes.
func TestChunkWriterCutsLikeCutChunks(t *testing.T) {
	data := []byte(syslogText("stream", 30)) // about 1 MiB
	want := cutChunks(data)
	var got [][]byte
	w := newChunkWriter("x.didx", [16]byte{}, 0, func(c []byte) ([32]byte, error) {
		got = append(got, bytes.Clone(c))
		return sha256.Sum256(c), nil
	})
	for off, step := 0, 1; off < len(data); step = step*7%100003 + 1 {
		n := min(step, len(data)-off)
		if _, err := w.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	info, raw, err := w.finish(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
	dx, err := index.ParseDynamic(raw)
	if err != nil || len(dx.Entries) != len(want) || info.Size != uint64(len(data)) {
		t.Errorf("index: %v, %d entries, size %d", err, len(dx.Entries), info.Size)
	}
}

// WriteFileArchive stores a tree with a large streamed file as v1 and as
// split archive, plain and encrypted; the stored streams are the encoder's.
func TestWriteFileArchive(t *testing.T) {
	base := filepath.Join(t.TempDir(), "store")
	st, cleanup, err := createStore(base, datastore.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	cc, err := manifest.NewCryptConfig(DemoKey())
	if err != nil {
		t.Fatal(err)
	}
	const bigSize = 3<<20 + 12345
	root := rootFS("archive-test", 0, 1717200000)
	root.Children = append(root.Children, &encoder.Node{Name: "big", Mode: pxar.ModeRegular | 0o644, Size: bigSize,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(io.LimitReader(&countingReader{}, bigSize)), nil }})
	for _, split := range []bool{false, true} {
		for _, crypt := range []*manifest.CryptConfig{nil, cc} {
			infos, files, err := WriteFileArchive(st, FileArchive{Name: "data", Root: root, Split: split, Ctime: 1717200000, Crypt: crypt})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]*bytes.Buffer{}
			buf := func(name string) *bytes.Buffer { want[name] = &bytes.Buffer{}; return want[name] }
			if split {
				err = encoder.WriteSplit(buf("data.mpxar.didx"), buf("data.ppxar.didx"), root, encoder.SplitOptions{})
			} else if err = encoder.WriteV1(buf("data.pxar.didx"), root); err == nil {
				err = encoder.WriteCatalog(buf("catalog.pcat1.didx"), encoder.CatalogArchive{Name: "data.pxar.didx", Root: root})
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != len(want) || len(files) != len(want) {
				t.Fatalf("split %v: files %v", split, infos)
			}
			dir := t.TempDir()
			for _, info := range infos {
				if (info.CryptMode == manifest.CryptEncrypt) != (crypt != nil) {
					t.Errorf("%s: crypt-mode %s", info.Filename, info.CryptMode)
				}
				// readStream reads the index from a store-relative path.
				rel, _ := filepath.Rel(base, filepath.Join(dir, info.Filename))
				if err := os.WriteFile(filepath.Join(dir, info.Filename), files[info.Filename], 0o644); err != nil {
					t.Fatal(err)
				}
				got, _ := readStream(t, base, rel, crypt != nil)
				if !bytes.Equal(got, want[info.Filename].Bytes()) {
					t.Errorf("split %v, encrypted %v: %s: stored stream (%d bytes) differs from the encoder's (%d bytes)",
						split, crypt != nil, info.Filename, len(got), want[info.Filename].Len())
				}
			}
		}
	}
}

// countingReader yields bytes 0, 1, 2, ... (mod 256).
type countingReader struct{ off int }

func (c *countingReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(c.off + i)
	}
	c.off += len(b)
	return len(b), nil
}

// ChunkSize gives chunks of PBS's proportions: min avg/4, max avg*4, about
// avg on average; other sizes are refused.
func TestChunkSizeProportions(t *testing.T) {
	const avg = 1 << 20
	c, err := chunkingFor(avg)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 48<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i+8 <= len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
	}
	var sizes []int
	w := newChunkWriter("x.didx", [16]byte{}, 0, func(b []byte) ([32]byte, error) {
		sizes = append(sizes, len(b))
		return sha256.Sum256(b), nil
	})
	w.c = c
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.finish(false); err != nil {
		t.Fatal(err)
	}
	for i, s := range sizes {
		if s > 4*avg || (s < avg/4 && i != len(sizes)-1) {
			t.Errorf("chunk %d: %d bytes", i, s)
		}
	}
	if mean := len(data) / len(sizes); mean < avg/2 || mean > 2*avg {
		t.Errorf("%d chunks of %d bytes on average, want about %d", len(sizes), mean, avg)
	}
	for _, bad := range []int{1000, 32 << 10, 3 << 20, 8 << 20} {
		if _, err := chunkingFor(bad); err == nil {
			t.Errorf("chunk size %d accepted", bad)
		}
		if _, _, err := writeFileArchive(FileArchive{Name: "x", Root: &encoder.Node{Mode: pxar.ModeDir | 0o755}, ChunkSize: bad},
			func([]byte) ([32]byte, error) { return [32]byte{}, nil }, func(string) [16]byte { return [16]byte{} }); err == nil {
			t.Errorf("FileArchive with ChunkSize %d accepted", bad)
		}
	}
}
