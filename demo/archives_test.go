package demo

import (
	"bytes"
	"crypto/sha256"
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
