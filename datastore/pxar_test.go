package datastore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pbsfs/index"
	"pbsfs/manifest"
	"pbsfs/pxar"
)

// pxarFixture reads a fixture archive of the pxar package.
func pxarFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "pxar", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cutStream cuts a stream into chunks of varying sizes (as a chunker would).
func cutStream(b []byte) [][]byte {
	var parts [][]byte
	for i, n := 0, 0; len(b) > 0; i++ {
		n = min(len(b), 3000+(i*7919)%40000)
		parts = append(parts, b[:n])
		b = b[n:]
	}
	return parts
}

// writeStreams writes a finished snapshot ct/<id> whose manifest lists the
// given dynamic-index streams (file name -> content) in the order of names,
// encrypted with cfg when it is not nil.
func writeStreams(t testing.TB, s *Store, id string, cfg *manifest.CryptConfig, names []string, streams map[string][]byte) Snapshot {
	t.Helper()
	sn := snap(nil, "ct", id, testTime)
	if err := s.CreateGroup(sn.Group, "root@pam"); err != nil {
		if _, serr := s.StatGroup(sn.Group); serr != nil {
			t.Fatal(err)
		}
	}
	var infos []manifest.FileInfo
	files := map[string][]byte{}
	for _, name := range names {
		fi, raw, err := s.BuildDynamicIndex(name, cutStream(streams[name]), cfg)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, fi)
		files[name] = raw
	}
	bt, _ := time.Parse(time.RFC3339, testTime)
	m, err := manifest.New("ct", id, bt.Unix(), infos)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSnapshot(sn, m, files); err != nil {
		t.Fatal(err)
	}
	return sn
}

func TestArchiveNamePxar(t *testing.T) {
	for file, want := range map[string]struct {
		name string
		kind ArchiveKind
	}{
		"root.pxar.didx":     {"root.pxar", PxarArchive},
		"root.mpxar.didx":    {"root.pxar", PxarArchive},
		"root.ppxar.didx":    {"root.ppxar", DynamicArchive},
		"catalog.pcat1.didx": {"catalog.pcat1", DynamicArchive},
		"x.pxar.blob":        {"x.pxar", BlobArchive},
	} {
		name, kind, ok := ArchiveName(file)
		if !ok || name != want.name || kind != want.kind {
			t.Errorf("%q: %q %v %v, want %q %v", file, name, kind, ok, want.name, want.kind)
		}
	}
	for _, file := range []string{".pxar.didx", ".mpxar.didx"} {
		if name, kind, ok := ArchiveName(file); ok && kind == PxarArchive {
			t.Errorf("%q: shown as %q", file, name)
		}
	}
}

func TestListArchivesPairsSplit(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	v1 := pxarFixture(t, "pxar-crate-v1.pxar")
	meta, payload := pxarFixture(t, "pxar-crate-v2.mpxar"), pxarFixture(t, "pxar-crate-v2.ppxar")
	names := []string{"catalog.pcat1.didx", "data.ppxar.didx", "data.mpxar.didx", "root.pxar.didx", "lone.ppxar.didx", "nopay.mpxar.didx"}
	sn := writeStreams(t, s, "200", nil, names, map[string][]byte{
		"catalog.pcat1.didx": []byte("catalog"), "data.ppxar.didx": payload, "data.mpxar.didx": meta,
		"root.pxar.didx": v1, "lone.ppxar.didx": payload, "nopay.mpxar.didx": meta,
	})
	list, _, err := s.ListArchives(sn)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range list {
		d := a.Name + " " + a.Kind.String()
		if a.Payload != nil {
			d += " +" + a.Payload.File
		}
		got = append(got, d)
	}
	want := []string{"catalog.pcat1 dynamic index", "data.pxar pxar archive +data.ppxar.didx", "root.pxar pxar archive",
		"lone.ppxar dynamic index", "nopay.pxar pxar archive"}
	if !slices.Equal(got, want) {
		t.Fatalf("ListArchives:\n%q\nwant\n%q", got, want)
	}
	if _, err := s.FindArchive(sn, "data.ppxar"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the payload stream of a split archive is shown on its own: %v", err)
	}

	for _, name := range []string{"root.pxar", "data.pxar"} {
		arch, info, _, err := s.OpenPxar(sn, name)
		if err != nil {
			t.Fatalf("OpenPxar %s: %v", name, err)
		}
		root, err := arch.Root()
		if err != nil {
			t.Fatal(err)
		}
		ents, err := arch.ReadDir(root)
		if err != nil || len(ents) < 10 {
			t.Fatalf("%s: ReadDir: %d entries, %v", name, len(ents), err)
		}
		readme, err := arch.Lookup(root, "README.txt")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, readme.Size)
		if n, err := arch.ReadAt(readme, buf, 0); err != nil || n != len(buf) {
			t.Fatalf("%s: read README.txt: %d %v", name, n, err)
		}
		if info.Split() != (name == "data.pxar") {
			t.Errorf("%s: Split() = %v", name, info.Split())
		}
		// Opened archives are kept while the files are unchanged.
		again, _, _, err := s.OpenPxar(sn, name)
		if err != nil || again != arch {
			t.Errorf("%s: second OpenPxar gave another archive (%v)", name, err)
		}
	}

	_, _, _, err = s.OpenPxar(sn, "nopay.pxar")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "nopay.ppxar.didx") {
		t.Errorf("split archive without payload in the manifest: %v", err)
	}
	if _, _, _, err := s.OpenPxar(sn, "catalog.pcat1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenPxar of a stream: %v", err)
	}
	if _, _, _, err := s.OpenPxar(sn, "missing.pxar"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenPxar of a missing name: %v", err)
	}
}

// A snapshot written anew (same name, other archive) is opened anew.
func TestOpenPxarReopensChangedArchive(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	v1 := pxarFixture(t, "pxar-crate-v1.pxar")
	sn := writeStreams(t, s, "200", nil, []string{"root.pxar.didx"}, map[string][]byte{"root.pxar.didx": v1})
	a1, _, _, err := s.OpenPxar(sn, "root.pxar")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.Path(), sn.Dir())); err != nil {
		t.Fatal(err)
	}
	// Another archive under the same name: the split fixture's tree.
	meta, payload := pxarFixture(t, "pxar-crate-v2.mpxar"), pxarFixture(t, "pxar-crate-v2.ppxar")
	writeStreams(t, s, "200", nil, []string{"root.mpxar.didx", "root.ppxar.didx"},
		map[string][]byte{"root.mpxar.didx": meta, "root.ppxar.didx": payload})
	a2, info, _, err := s.OpenPxar(sn, "root.pxar")
	if err != nil {
		t.Fatal(err)
	}
	if a2 == a1 || !info.Split() || a2.Version() != 2 {
		t.Errorf("replaced archive not reopened: same %v, split %v, version %d", a2 == a1, info.Split(), a2.Version())
	}
}

func TestOpenPxarEncrypted(t *testing.T) {
	key := testKey(t, 3)
	base := filepath.Join(t.TempDir(), "store")
	if err := Create(base, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := openArchiveStore(t, base, ArchiveOptions{Enabled: true, Crypt: key})
	meta, payload := pxarFixture(t, "pxar-crate-v2.mpxar"), pxarFixture(t, "pxar-crate-v2.ppxar")
	sn := writeStreams(t, w, "300", key, []string{"root.mpxar.didx", "root.ppxar.didx"},
		map[string][]byte{"root.mpxar.didx": meta, "root.ppxar.didx": payload})

	arch, _, _, err := w.OpenPxar(sn, "root.pxar")
	if err != nil {
		t.Fatalf("with the key: %v", err)
	}
	if _, err := arch.Root(); err != nil {
		t.Fatal(err)
	}
	noKey := openArchiveStore(t, base, ArchiveOptions{Enabled: true})
	if _, _, _, err := noKey.OpenPxar(sn, "root.pxar"); !errors.Is(err, ErrEncrypted) {
		t.Errorf("without the key: %v, want ErrEncrypted", err)
	}
}

// A malformed archive gives ErrCorrupt naming the index file and the
// offset; a damaged chunk in a file's content fails that read only.
func TestOpenPxarDamaged(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	v1 := pxarFixture(t, "pxar-crate-v1.pxar")
	bad := slices.Clone(v1)
	copy(bad[:8], []byte{1, 2, 3, 4, 5, 6, 7, 8}) // the root ENTRY's type
	sn := writeStreams(t, s, "400", nil, []string{"bad.pxar.didx", "root.pxar.didx"},
		map[string][]byte{"bad.pxar.didx": bad, "root.pxar.didx": v1})
	_, _, _, err := s.OpenPxar(sn, "bad.pxar")
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, pxar.ErrCorrupt) || !strings.Contains(err.Error(), "bad.pxar.didx") ||
		!strings.Contains(err.Error(), "offset") {
		t.Errorf("malformed archive: %v", err)
	}

	arch, _, _, err := s.OpenPxar(sn, "root.pxar")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := arch.Root()
	big, err := arch.Lookup(root, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Damage the chunk holding the middle of big.bin (300000 bytes near
	// the start of the stream).
	raw, _ := os.ReadFile(filepath.Join(s.Path(), sn.Dir(), "root.pxar.didx"))
	dx, err := index.ParseDynamic(raw)
	if err != nil {
		t.Fatal(err)
	}
	pos := bytesIndex(v1, "big.bin") + 150000
	i, _, _, _ := dx.ChunkAt(uint64(pos))
	chunk := filepath.Join(s.Path(), index.ChunkPath(dx.Entries[i].Digest))
	if err := os.Remove(chunk); err != nil {
		t.Fatal(err)
	}
	// A second store over the same directory has decoded nothing yet (the
	// first one's cache may hold the chunk, and its read-ahead may still
	// be running).
	s = openArchiveStore(t, s.Path(), ArchiveOptions{Enabled: true})
	if arch, _, _, err = s.OpenPxar(sn, "root.pxar"); err != nil {
		t.Fatal(err)
	}
	if root, err = arch.Root(); err != nil {
		t.Fatal(err)
	}
	if big, err = arch.Lookup(root, "big.bin"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := arch.ReadAt(big, buf, 150000-100); !errors.Is(err, ErrCorrupt) {
		t.Errorf("read over a missing chunk: %v", err)
	}
	readme, err := arch.Lookup(root, "README.txt")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := arch.ReadAt(readme, buf[:readme.Size], 0); err != nil || n != int(readme.Size) {
		t.Errorf("a file elsewhere: %d %v", n, err)
	}
}

func bytesIndex(b []byte, s string) int { return strings.Index(string(b), s) }
