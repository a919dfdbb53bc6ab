package datastore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pbsfs/index"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// testKey returns a crypt config for a fixed key (seed selects the key).
func testKey(t testing.TB, seed byte) *manifest.CryptConfig {
	t.Helper()
	c, err := manifest.NewCryptConfig(bytes.Repeat([]byte{seed}, manifest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openArchiveStore opens (creating it first when base is "") a datastore
// with archive access configured by o.
func openArchiveStore(t testing.TB, base string, o ArchiveOptions) *Store {
	t.Helper()
	if base == "" {
		base = filepath.Join(t.TempDir(), "store")
		if err := Create(base, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(base, Options{Lock: lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: "test", UID: -1, GID: -1}, Archives: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const testChunk = 64 << 10

// archiveData is the content of the archives of a test snapshot.
type archiveData struct {
	sn     Snapshot
	image  []byte   // drive-scsi0.img: 3 full chunks (one all zero, one repeating another) and a short one
	parts  [][]byte // root.pxar: the chunks of the stream
	stream []byte
	conf   []byte // qemu-server.conf
	log    []byte // client.log (not in the manifest)
	m      *manifest.Manifest
}

// writeArchives writes a finished snapshot of vm/<id> with a disk image
// (.fidx), a stream (.didx), a config blob and a client log, with real
// chunks in the store, encrypted with cfg when it is not nil (and the
// manifest then signed with it).
func writeArchives(t testing.TB, s *Store, id string, cfg *manifest.CryptConfig) *archiveData {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(id)), 7))
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32() >> 29) // compressible, not trivially
		}
		return b
	}
	d := &archiveData{sn: snap(nil, "vm", id, testTime)}
	c0 := fill(testChunk)
	d.image = append(append(append(append([]byte{}, c0...), make([]byte, testChunk)...), c0...), fill(1000)...)
	for _, n := range []int{5000, 70000, 1, 33333, 12} {
		d.parts = append(d.parts, fill(n))
		d.stream = append(d.stream, d.parts[len(d.parts)-1]...)
	}
	d.conf = []byte("boot: order=scsi0\ncores: 2\nmemory: 2048\nscsi0: local:vm-100-disk-0,size=8G\n")
	d.log = []byte("2024-06-05T14:22:01Z: starting backup\n")

	if err := s.CreateGroup(d.sn.Group, "root@pam"); err != nil && !errors.Is(err, ErrInvalid) {
		if _, serr := s.StatGroup(d.sn.Group); serr != nil {
			t.Fatal(err)
		}
	}
	fi, fidx, err := s.BuildFixedIndex("drive-scsi0.img.fidx", d.image, testChunk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	di, didx, err := s.BuildDynamicIndex("root.pxar.didx", d.parts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bi, blob, err := BuildBlob("qemu-server.conf.blob", d.conf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, logBlob, err := BuildBlob(ClientLogName, d.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	bt, _ := time.Parse(time.RFC3339, testTime)
	d.m, err = manifest.New("vm", id, bt.Unix(), []manifest.FileInfo{bi, fi, di})
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		if err := d.m.Sign(cfg.IDKey()); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{fi.Filename: fidx, di.Filename: didx, bi.Filename: blob, ClientLogName: logBlob}
	if err := s.WriteSnapshot(d.sn, d.m, files); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *archiveData) content(name string) []byte {
	switch name {
	case "drive-scsi0.img":
		return d.image
	case "root.pxar":
		return d.stream
	case "qemu-server.conf":
		return d.conf
	case "client.log":
		return d.log
	}
	return nil
}

var archiveNames = []string{"qemu-server.conf", "drive-scsi0.img", "root.pxar", "client.log"}

// checkContent reads each archive whole and in random ranges.
func checkContent(t *testing.T, s *Store, d *archiveData) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range archiveNames {
		want := d.content(name)
		a, err := s.OpenArchive(d.sn, name)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if a.Size() != int64(len(want)) {
			t.Fatalf("%s: size %d, want %d", name, a.Size(), len(want))
		}
		got, err := io.ReadAll(io.NewSectionReader(a, 0, a.Size()))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: whole read differs (%d bytes, %v)", name, len(got), err)
		}
		for range 200 {
			off := rng.Int64N(int64(len(want)) + 10)
			n := rng.IntN(3*testChunk) + 1
			wantPart := want[min(off, int64(len(want))):min(off+int64(n), int64(len(want)))]
			buf := make([]byte, n)
			k, err := a.ReadAt(buf, off)
			if k != len(wantPart) || !bytes.Equal(buf[:k], wantPart) || (k < n) != (err == io.EOF) {
				t.Fatalf("%s: ReadAt(%d, %d) = %d, %v", name, off, n, k, err)
			}
		}
	}
}

func TestArchivesPlain(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	d := writeArchives(t, s, "100", nil)
	list, _, err := s.ListArchives(d.sn)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != strings.Join(archiveNames, ",") {
		t.Errorf("ListArchives = %q", names)
	}
	if list[3].InManifest || list[3].File != ClientLogName {
		t.Errorf("client log entry %+v", list[3])
	}
	checkContent(t, s, d)
	// Zero-byte reads and reads at or past the end.
	a, _ := s.OpenArchive(d.sn, "drive-scsi0.img")
	if n, err := a.ReadAt(nil, a.Size()); err != nil || n != 0 {
		t.Errorf("empty read at end: %d, %v", n, err)
	}
	if n, err := a.ReadAt(make([]byte, 4), a.Size()+5); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past end: %d, %v", n, err)
	}
	if _, err := a.ReadAt(make([]byte, 1), -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative offset: %v", err)
	}
	if a.ChunkCount() != 4 || a.Stamp().IsZero() || a.Readable() != nil {
		t.Errorf("chunks %d stamp %v readable %v", a.ChunkCount(), a.Stamp(), a.Readable())
	}
	if _, st, err := s.StatArchive(d.sn, "drive-scsi0.img"); err != nil || st.Ino != a.Stamp().Ino {
		t.Errorf("StatArchive: %v", err)
	}
	for _, name := range archiveNames {
		if a, err := s.FindArchive(d.sn, name); err != nil || a.Name != name {
			t.Errorf("FindArchive(%s): %+v, %v", name, a, err)
		}
	}
	if _, err := s.FindArchive(d.sn, "notes"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindArchive(notes): %v", err)
	}
	if _, err := s.OpenArchive(d.sn, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown archive: %v", err)
	}
	// The zero chunk and the repeated chunk are stored once.
	n, _ := s.ChunkCacheStats()
	if n == 0 {
		t.Error("nothing cached")
	}
}

func TestArchivesDisabled(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{})
	d := writeArchives(t, s, "100", nil)
	if list, _, err := s.ListArchives(d.sn); err != nil || len(list) != 0 {
		t.Errorf("disabled: %v, %v", list, err)
	}
	if s.ArchivesEnabled() {
		t.Error("enabled")
	}
	if _, err := s.FindArchive(d.sn, "client.log"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindArchive while disabled: %v", err)
	}
	if _, err := s.OpenArchive(d.sn, "drive-scsi0.img"); !errors.Is(err, ErrNotFound) {
		t.Errorf("open while disabled: %v", err)
	}
	// manifest.json is unchanged without a key.
	js, _, err := s.ManifestJSON(d.sn)
	if err != nil || !bytes.Equal(js, append(d.m.MarshalPretty(), '\n')) {
		t.Errorf("ManifestJSON changed: %v", err)
	}
}

// chunkFile returns the path of the chunk holding offset off of an archive.
func chunkFile(t *testing.T, s *Store, a *Archive, off uint64) string {
	t.Helper()
	_, digest, _, _, ok := a.chunkAt(off)
	if !ok {
		t.Fatal("no chunk")
	}
	return filepath.Join(s.Path(), index.ChunkPath(digest))
}

func TestArchiveDamagedChunks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, p string)
		msg    string
	}{
		{"missing", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
		{"bad crc", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 0x40
			os.WriteFile(p, b, 0o644)
		}, "CRC"},
		{"crc field", func(t *testing.T, p string) {
			// Only the stored CRC is wrong: payload and digest are fine.
			b, _ := os.ReadFile(p)
			b[8] ^= 0x40
			os.WriteFile(p, b, 0o644)
		}, "CRC"},
		{"wrong content", func(t *testing.T, p string) {
			// A valid blob with the right CRC but other data.
			raw, _ := manifest.EncodeBlob(bytes.Repeat([]byte("x"), 100), true)
			os.WriteFile(p, raw, 0o644)
		}, "wrong digest"},
		{"truncated", func(t *testing.T, p string) { os.WriteFile(p, []byte("abc"), 0o644) }, "too small"},
		{"symlink", func(t *testing.T, p string) {
			os.Remove(p)
			os.Symlink("/etc/passwd", p)
		}, "symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openArchiveStore(t, "", ArchiveOptions{Enabled: true, CacheBytes: -1})
			d := writeArchives(t, s, "100", nil)
			a, err := s.OpenArchive(d.sn, "root.pxar")
			if err != nil {
				t.Fatal(err)
			}
			// Damage the second chunk of the stream: [5000, 75000).
			p := chunkFile(t, s, a, 5000)
			tc.damage(t, p)
			for _, r := range [][2]int64{{5000, 10}, {4990, 20}, {70000, 5000}} {
				v, err := view(a, r[0], int(r[1]))
				if !errors.Is(err, ErrCorrupt) || v != nil {
					t.Fatalf("read %v: %d bytes, %v", r, len(v), err)
				}
				if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error does not name the chunk %s or say %q: %v", p, tc.msg, err)
				}
			}
			buf := make([]byte, 10000)
			n, err := a.ReadAt(buf, 0)
			if !errors.Is(err, ErrCorrupt) || n != 5000 || !bytes.Equal(buf[:n], d.stream[:5000]) {
				t.Errorf("ReadAt across: %d, %v", n, err)
			}
			// The other chunks still read.
			if v, err := view(a, 0, 5000); err != nil || !bytes.Equal(v, d.stream[:5000]) {
				t.Errorf("first chunk: %v", err)
			}
			if v, err := view(a, 75000, 100); err != nil || !bytes.Equal(v, d.stream[75000:75100]) {
				t.Errorf("third chunk: %v", err)
			}
		})
	}
}

func TestArchiveManifestMismatch(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	d := writeArchives(t, s, "100", nil)
	dir := filepath.Join(s.Path(), d.sn.Dir())
	// Index: a different (valid) index in place of the one the manifest
	// describes.
	other := &index.Fixed{Size: uint64(len(d.image)), ChunkSize: testChunk, Digests: make([][32]byte, 4)}
	if err := os.WriteFile(filepath.Join(dir, "drive-scsi0.img.fidx"), other.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenArchive(d.sn, "drive-scsi0.img"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("fidx csum mismatch: %v", err)
	}
	// Blob: valid but different content.
	_, raw, _ := BuildBlob("x", []byte("something else"), nil)
	os.WriteFile(filepath.Join(dir, "qemu-server.conf.blob"), raw, 0o644)
	if _, err := s.OpenArchive(d.sn, "qemu-server.conf"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("blob mismatch: %v", err)
	}
	// Missing index file.
	os.Remove(filepath.Join(dir, "root.pxar.didx"))
	if _, err := s.OpenArchive(d.sn, "root.pxar"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing index: %v", err)
	}
	if _, _, err := s.StatArchive(d.sn, "root.pxar"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("stat missing index: %v", err)
	}
	// Not an index at all.
	os.WriteFile(filepath.Join(dir, "root.pxar.didx"), []byte("garbage"), 0o644)
	if _, err := s.OpenArchive(d.sn, "root.pxar"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage index: %v", err)
	}
	// The client log is not in the manifest: only its CRC is checked.
	if a, err := s.OpenArchive(d.sn, "client.log"); err != nil || a.Size() != int64(len(d.log)) {
		t.Errorf("client log: %v", err)
	}
}

func TestArchiveEncrypted(t *testing.T) {
	key := testKey(t, 7)
	base := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	d := writeArchives(t, base, "100", key)

	t.Run("no key", func(t *testing.T) {
		s := openArchiveStore(t, base.Path(), ArchiveOptions{Enabled: true})
		for _, name := range archiveNames[:3] {
			a, err := s.OpenArchive(d.sn, name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !errors.Is(a.Readable(), ErrEncrypted) {
				t.Errorf("%s: readable %v", name, a.Readable())
			}
			if _, err := view(a, 0, 10); !errors.Is(err, ErrEncrypted) {
				t.Errorf("%s: read %v", name, err)
			}
			if _, err := a.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrEncrypted) {
				t.Errorf("%s: ReadAt %v", name, err)
			}
		}
		a, _ := s.OpenArchive(d.sn, "drive-scsi0.img")
		if a.Size() != int64(len(d.image)) {
			t.Errorf("image size without key %d", a.Size())
		}
		a, _ = s.OpenArchive(d.sn, "qemu-server.conf")
		if a.Size() != 0 {
			t.Errorf("blob size without key %d", a.Size())
		}
		// The (unencrypted) client log reads.
		if a, err := s.OpenArchive(d.sn, "client.log"); err != nil || a.Readable() != nil {
			t.Errorf("client log: %v", err)
		}
		js, _, _ := s.ManifestJSON(d.sn)
		if bytes.Contains(js, []byte(SignatureCheckKey)) {
			t.Error("signature check shown without a key")
		}
	})
	t.Run("key", func(t *testing.T) {
		s := openArchiveStore(t, base.Path(), ArchiveOptions{Enabled: true, Crypt: key})
		checkContent(t, s, d)
		js, _, err := s.ManifestJSON(d.sn)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(js, &v); err != nil || v[SignatureCheckKey] != "valid" {
			t.Errorf("manifest.json: %v %v\n%s", err, v[SignatureCheckKey], js)
		}
	})
	t.Run("other key", func(t *testing.T) {
		s := openArchiveStore(t, base.Path(), ArchiveOptions{Enabled: true, Crypt: testKey(t, 8)})
		a, err := s.OpenArchive(d.sn, "drive-scsi0.img")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Readable(); !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), key.Fingerprint()) {
			t.Errorf("other key: %v", err)
		}
		js, _, _ := s.ManifestJSON(d.sn)
		if !bytes.Contains(js, []byte(`"`+SignatureCheckKey+`": "other key"`)) {
			t.Errorf("manifest.json:\n%s", js)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		s := openArchiveStore(t, base.Path(), ArchiveOptions{Enabled: true, Crypt: key, CacheBytes: -1})
		a, _ := s.OpenArchive(d.sn, "drive-scsi0.img")
		p := chunkFile(t, s, a, 3*testChunk)
		orig, _ := os.ReadFile(p)
		defer os.WriteFile(p, orig, 0o644)
		// Flip a tag byte and fix nothing else: the CRC does not cover the
		// tag, so only decryption notices.
		bad := append([]byte(nil), orig...)
		bad[30] ^= 1
		os.WriteFile(p, bad, 0o644)
		if _, err := view(a, 3*testChunk, 10); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "decrypt") {
			t.Errorf("bad tag: %v", err)
		}
		// An unencrypted chunk where an encrypted one belongs.
		plain, _ := manifest.EncodeBlob(d.image[3*testChunk:], true)
		os.WriteFile(p, plain, 0o644)
		if _, err := view(a, 3*testChunk, 10); !errors.Is(err, ErrCorrupt) {
			t.Errorf("plain chunk in encrypted archive: %v", err)
		}
	})
}

// An unencrypted archive whose chunk is encrypted is corrupt, with or
// without a key (not EACCES).
func TestArchiveCryptModeMismatch(t *testing.T) {
	key := testKey(t, 7)
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true, CacheBytes: -1})
	d := writeArchives(t, s, "100", nil)
	a, _ := s.OpenArchive(d.sn, "root.pxar")
	p := chunkFile(t, s, a, 0)
	enc, _ := key.EncodeBlob(d.parts[0], true)
	os.WriteFile(p, enc, 0o644)
	for _, cfg := range []*manifest.CryptConfig{nil, key} {
		s2 := openArchiveStore(t, s.Path(), ArchiveOptions{Enabled: true, Crypt: cfg, CacheBytes: -1})
		a, _ := s2.OpenArchive(d.sn, "root.pxar")
		if _, err := view(a, 0, 10); !errors.Is(err, ErrCorrupt) {
			t.Errorf("key %v: %v", cfg != nil, err)
		}
	}
}

func TestSignatureStatus(t *testing.T) {
	key := testKey(t, 7)
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true, Crypt: key})
	d := writeArchives(t, s, "100", key)
	unsigned := writeArchives(t, s, "101", nil)

	// A manifest whose signature does not match its content.
	sig := mustSig(t, d.m)
	text := strings.Replace(string(d.m.MarshalPretty()), `"signature": "`+sig+`"`, `"signature": "`+strings.Repeat("0", 64)+`"`, 1)
	bad, err := manifest.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	badSn := snap(nil, "vm", "102", testTime)
	s.CreateGroup(badSn.Group, "root@pam")
	if err := s.WriteSnapshot(badSn, bad, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sn   Snapshot
		want string
	}{{d.sn, "valid"}, {unsigned.sn, "unsigned"}, {badSn, "invalid"}} {
		sn, want := c.sn, c.want
		js, _, err := s.ManifestJSON(sn)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(js, &v); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", want, err, js)
		}
		if v[SignatureCheckKey] != want {
			t.Errorf("%s: %v", want, v[SignatureCheckKey])
		}
		// Everything else is the manifest's own JSON.
		delete(v, SignatureCheckKey)
		m, _, _ := s.Manifest(sn)
		var orig map[string]any
		json.Unmarshal(m.MarshalPretty(), &orig)
		a, _ := json.Marshal(v)
		b, _ := json.Marshal(orig)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: other keys changed", want)
		}
	}
}

func mustSig(t *testing.T, m *manifest.Manifest) string {
	sig, ok := m.Signature()
	if !ok {
		t.Fatal("unsigned")
	}
	return sig
}

func TestInsertTopLevel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{\n  \"a\": 1,\n  \"z\": {\n    \"b\": 2\n  }\n}", "{\n  \"a\": 1,\n  \"k\": \"v\",\n  \"z\": {\n    \"b\": 2\n  }\n}"},
		{"{\n  \"a\": 1\n}", "{\n  \"a\": 1,\n  \"k\": \"v\"\n}"},
		{"{\n  \"a\": [\n    1\n  ]\n}", "{\n  \"a\": [\n    1\n  ],\n  \"k\": \"v\"\n}"},
		{"{\n  \"x\": 1\n}", "{\n  \"k\": \"v\",\n  \"x\": 1\n}"},
		{"{}", "{}"},
	} {
		got := string(insertTopLevel([]byte(tc.in), "k", "v"))
		if got != tc.want {
			t.Errorf("insert into %q:\n%s\nwant\n%s", tc.in, got, tc.want)
		}
	}
}

func TestArchiveName(t *testing.T) {
	for file, want := range map[string]string{
		"drive-scsi0.img.fidx":  "drive-scsi0.img",
		"root.pxar.didx":        "root.pxar",
		"catalog.pcat1.didx":    "catalog.pcat1",
		"qemu-server.conf.blob": "qemu-server.conf",
		"client.log.blob":       "client.log",
		"index.json.blob":       "",
		".blob":                 "",
		"x.txt":                 "",
		"../x.blob":             "",
		"a/b.didx":              "",
		".hidden.blob":          "",
	} {
		got, _, ok := ArchiveName(file)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v", file, got, ok)
		}
	}
}

func TestInsertChunk(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{})
	data := bytes.Repeat([]byte("chunk data "), 1000)
	d, err := s.InsertChunk(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d != sha256.Sum256(data) {
		t.Error("plain digest")
	}
	p := filepath.Join(s.Path(), index.ChunkPath(d))
	st1, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("prefix dir: %v %v", fi.Mode(), err)
	}
	// A duplicate is not rewritten.
	time.Sleep(10 * time.Millisecond)
	if d2, err := s.InsertChunk(data, nil); err != nil || d2 != d {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(p); !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("duplicate rewritten")
	}
	// A zero-length file is replaced.
	os.WriteFile(p, nil, 0o644)
	if _, err := s.InsertChunk(data, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := s.loadChunk(d, nil); err != nil || !bytes.Equal(c.data, data) || c.encrypted {
		t.Errorf("reload: %v", err)
	}
	// Encrypted: keyed digest, encrypted magic.
	key := testKey(t, 3)
	de, err := s.InsertChunk(data, key)
	if err != nil || de != key.ComputeDigest(data) {
		t.Fatalf("encrypted digest: %v", err)
	}
	if _, err := s.loadChunk(de, nil); !errors.Is(err, ErrEncrypted) {
		t.Errorf("encrypted without key: %v", err)
	}
	if c, err := s.loadChunk(de, key); err != nil || !c.encrypted || !bytes.Equal(c.data, data) {
		t.Errorf("encrypted with key: %v", err)
	}
	// Read-only stores refuse.
	ro, err := Open(s.Path(), Options{ReadOnly: true, Lock: lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: "t", UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.InsertChunk([]byte("new"), nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only: %v", err)
	}
}

func TestChunkCacheBound(t *testing.T) {
	c := newChunkCache(100)
	mk := func(n int) func() (*chunk, error) {
		return func() (*chunk, error) { return newChunk(make([]byte, n), nil, false, nil), nil }
	}
	for i := range 10 {
		v, err := c.load([32]byte{byte(i)}, mk(30))
		if err != nil {
			t.Fatal(err)
		}
		v.release()
		if n, size := c.stats(); size > 100 || n > 3 {
			t.Fatalf("after %d: %d entries, %d bytes", i, n, size)
		}
	}
	// The most recent ones are kept.
	if !c.has([32]byte{9}) {
		t.Error("newest evicted")
	}
	if c.has([32]byte{0}) {
		t.Error("oldest kept")
	}
	// Larger than the whole cache: served, not kept.
	if v, err := c.load([32]byte{99}, mk(101)); err != nil || len(v.data) != 101 || c.has([32]byte{99}) {
		t.Errorf("oversized: %v", err)
	}
	// Errors are not cached.
	boom := errors.New("boom")
	if _, err := c.load([32]byte{50}, func() (*chunk, error) { return nil, boom }); err != boom {
		t.Error(err)
	}
	if c.has([32]byte{50}) {
		t.Error("error cached")
	}
	// Disabled cache.
	off := newChunkCache(-1)
	off.load([32]byte{1}, mk(1))
	if n, _ := off.stats(); n != 0 {
		t.Error("disabled cache keeps chunks")
	}
}

// A chunk's memory goes back to the pool only when the cache has dropped
// it and every reader has released it: never while someone reads it.
func TestChunkCacheReferences(t *testing.T) {
	pool := newBufPool(1<<20, newMemBudget(1<<30))
	c := newChunkCache(100)
	mk := func(fill byte) func() (*chunk, error) {
		return func() (*chunk, error) {
			buf := mustGet(t, pool, 40)[:40]
			for i := range buf {
				buf[i] = fill
			}
			return newChunk(buf, buf, false, pool), nil
		}
	}
	held, err := c.load([32]byte{1}, mk(1)) // a reader keeps it
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.load([32]byte{1}, mk(9)) // a cache hit: same chunk, another reference
	if again != held || held.refs.Load() != 3 {
		t.Fatalf("hit: same %v, %d references (want the cache's and two readers')", again == held, held.refs.Load())
	}
	again.release()
	for i := byte(2); i < 6; i++ { // push chunk 1 out of the cache
		v, err := c.load([32]byte{i}, mk(i))
		if err != nil {
			t.Fatal(err)
		}
		v.release()
	}
	if c.has([32]byte{1}) {
		t.Fatal("chunk 1 still cached")
	}
	if held.refs.Load() != 1 {
		t.Fatalf("evicted chunk has %d references, want the reader's", held.refs.Load())
	}
	// Its memory is not handed out while the reader holds it.
	poolled, _ := pool.held()
	for range poolled {
		b := mustGet(t, pool, 40)[:40]
		if &b[0] == &held.data[0] {
			t.Fatal("memory of a chunk in use lent out")
		}
	}
	for _, b := range held.data {
		if b != 1 {
			t.Fatal("chunk in use overwritten")
		}
	}
	held.release()
	if n, _ := pool.held(); n != 1 {
		t.Errorf("pool holds %d buffers after the last release, want 1", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("a release too many did not panic")
		}
	}()
	held.release()
}

func TestBufPool(t *testing.T) {
	p := newBufPool(100<<10, newMemBudget(1<<30))
	a := mustGet(t, p, 40000)
	if cap(a) < 40000 || len(a) != 0 {
		t.Fatalf("Get: len %d cap %d", len(a), cap(a))
	}
	p.Put(a)
	if b := mustGet(t, p, 39000); &b[:1][0] != &a[:1][0] {
		t.Error("a fitting free buffer was not reused")
	}
	p.Put(a)
	if b := mustGet(t, p, 10000); &b[:1][0] == &a[:1][0] {
		t.Error("a buffer four times too large was lent (wasting memory)")
	}
	// The limit: the oldest free buffers go.
	p = newBufPool(10<<10, newMemBudget(1<<30))
	for range 5 {
		p.Put(make([]byte, 0, 4<<10))
	}
	if n, bytes := p.held(); n != 2 || bytes != 8<<10 {
		t.Errorf("holds %d buffers, %d bytes; want 2, 8 KiB", n, bytes)
	}
	p.Put(make([]byte, 0, 20<<10)) // larger than the whole limit: dropped
	if n, _ := p.held(); n != 2 {
		t.Errorf("holds %d buffers after an oversized Put", n)
	}
}

func TestChunkCacheSingleLoad(t *testing.T) {
	c := newChunkCache(1 << 20)
	var mu sync.Mutex
	loads := 0
	release := make(chan struct{})
	var loaded *chunk
	load := func() (*chunk, error) {
		mu.Lock()
		loads++
		mu.Unlock()
		<-release
		loaded = newChunk([]byte("data"), nil, false, nil)
		return loaded, nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := c.load([32]byte{1}, load)
			if err != nil || string(v.data) != "data" {
				t.Error(err)
				return
			}
			v.release()
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if loads != 1 {
		t.Errorf("%d loads", loads)
	}
	if n := loaded.refs.Load(); n != 1 {
		t.Errorf("%d references left, want the cache's", n)
	}
}

// Sequential reads load the next chunk ahead into the cache.
func TestArchiveReadAhead(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	d := writeArchives(t, s, "100", nil)
	a, err := s.OpenArchive(d.sn, "root.pxar")
	if err != nil {
		t.Fatal(err)
	}
	view(a, 0, 10)
	view(a, 10, 10) // same chunk again: sequential
	next, _, _, _ := a.chunkRange(1)
	deadline := time.Now().Add(5 * time.Second)
	for !s.arch.cache.has(next) {
		if time.Now().After(deadline) {
			t.Fatal("next chunk not read ahead")
		}
		time.Sleep(time.Millisecond)
	}
	// Concurrent readers of everything agree with the content.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for off := int64(g); off < a.Size(); off += 997 {
				v, err := view(a, off, 3000)
				if err != nil || !bytes.Equal(v, d.stream[off:min(off+3000, int64(len(d.stream)))]) {
					t.Errorf("read at %d: %v", off, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// view reads n bytes at off (fewer at the end), nothing on error.
func view(a *Archive, off int64, n int) ([]byte, error) {
	buf := make([]byte, n)
	k, err := a.ReadAt(buf, off)
	switch {
	case err == io.EOF:
		err = nil
	case err != nil:
		return nil, err // as the mount answers: an error, no bytes
	}
	return buf[:k], err
}

// Chunk memory is reused (bufPool) once the cache has dropped a chunk and
// its readers are done: readers racing with evictions must still get
// exactly the stored bytes. A cache of three chunks under six concurrent
// readers of a 24-chunk image (compressed chunks, stored-uncompressed ones
// whose data is the file buffer itself, and encrypted ones) evicts and
// reuses constantly; run with -race.
func TestArchiveMemoryReuseUnderConcurrency(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			var cfg *manifest.CryptConfig
			if encrypted {
				cfg = testKey(t, 5)
			}
			s := openArchiveStore(t, "", ArchiveOptions{Enabled: true, Crypt: cfg, CacheBytes: 3 * testChunk})
			rng := rand.New(rand.NewPCG(3, 4))
			image := make([]byte, 24*testChunk)
			for c := range 24 {
				part := image[c*testChunk : (c+1)*testChunk]
				for i := range part {
					if c%2 == 0 {
						part[i] = byte(rng.Uint32()) // incompressible: stored as is
					} else {
						part[i] = byte(rng.Uint32() >> 29) // compressible
					}
				}
			}
			sn := snap(nil, "vm", "300", testTime)
			if err := s.CreateGroup(sn.Group, "root@pam"); err != nil {
				t.Fatal(err)
			}
			fi, fidx, err := s.BuildFixedIndex("drive-scsi0.img.fidx", image, testChunk, cfg)
			if err != nil {
				t.Fatal(err)
			}
			bt, _ := time.Parse(time.RFC3339, testTime)
			m, err := manifest.New("vm", "300", bt.Unix(), []manifest.FileInfo{fi})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WriteSnapshot(sn, m, map[string][]byte{fi.Filename: fidx}); err != nil {
				t.Fatal(err)
			}
			a, err := s.OpenArchive(sn, "drive-scsi0.img")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 6 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					buf := make([]byte, 3*testChunk)
					for range 400 {
						off := rng.Int64N(int64(len(image)))
						n := rng.IntN(len(buf)) + 1
						if g%2 == 0 { // sequential stretches, for the read-ahead
							off = off / testChunk * testChunk
							n = testChunk
						}
						k, err := a.ReadAt(buf[:n], off)
						if err != nil && err != io.EOF {
							t.Errorf("ReadAt(%d, %d): %v", off, n, err)
							return
						}
						if !bytes.Equal(buf[:k], image[off:off+int64(k)]) {
							t.Errorf("ReadAt(%d, %d): wrong bytes", off, n)
							return
						}
					}
				})
			}
			wg.Wait()
			if n, size := s.ChunkCacheStats(); size > 3*testChunk {
				t.Errorf("cache holds %d chunks, %d bytes: over its bound", n, size)
			}
			if n, _ := s.arch.pool.held(); n == 0 {
				t.Error("no chunk memory came back to the pool")
			}
		})
	}
}

// TestArchiveChunkShorterThanIndex: an index entry that claims more bytes
// than its chunk holds (here the second entry names the first, 5000-byte
// chunk for 7000 bytes) must not serve the short chunk's bytes, nor bytes
// from beyond it, as the range it claims.
func TestArchiveChunkShorterThanIndex(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	sn := snap(nil, "ct", "101", testTime)
	must(t, s.CreateGroup(sn.Group, "root@pam"))
	short := bytes.Repeat([]byte("short chunk "), 500)[:5000]
	digest, err := s.InsertChunk(short, nil)
	must(t, err)
	dx := &index.Dynamic{Ctime: 1717596121, Entries: []index.DynamicEntry{{End: 5000, Digest: digest}, {End: 12000, Digest: digest}}}
	csum, size := dx.ComputeCsum()
	fi := manifest.FileInfo{Filename: "root.pxar.didx", CryptMode: manifest.CryptNone, Size: size, Csum: fmt.Sprintf("%x", csum)}
	bt, _ := time.Parse(time.RFC3339, testTime)
	m, err := manifest.New("ct", "101", bt.Unix(), []manifest.FileInfo{fi})
	must(t, err)
	must(t, s.WriteSnapshot(sn, m, map[string][]byte{fi.Filename: dx.Encode()}))

	a, err := s.OpenArchive(sn, "root.pxar")
	must(t, err)
	if v, err := view(a, 0, 5000); err != nil || !bytes.Equal(v, short) {
		t.Fatalf("the first entry, which is right: %v", err)
	}
	for _, r := range [][2]int64{{5000, 100}, {11000, 1000}, {4000, 3000}} {
		v, err := view(a, r[0], int(r[1]))
		if !errors.Is(err, ErrCorrupt) || v != nil || !strings.Contains(err.Error(), "wrong length") {
			t.Errorf("view %v: %d bytes, %v; want ErrCorrupt for the wrong length", r, len(v), err)
		}
	}
	buf := make([]byte, 12000)
	n, err := a.ReadAt(buf, 0)
	if !errors.Is(err, ErrCorrupt) || n != 5000 {
		t.Errorf("ReadAt over both entries: %d bytes, %v; want the 5000 verified ones and ErrCorrupt", n, err)
	}
}

func mustGet(t testing.TB, p *bufPool, n int) []byte {
	t.Helper()
	b, err := p.Get(n)
	must(t, err)
	return b
}
