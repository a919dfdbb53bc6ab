package integration

// Archive contents (shown by default; --keyfile): disk images, streams (a catalog)
// and blobs read through a real mount, byte for byte, with damaged and
// missing chunks and encrypted archives; --no-archives turns them off.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/keyfile"
	"pbsfs/lock"
	"pbsfs/manifest"
)

const archiveChunk = 4 << 20 // PBS's default chunk size

// archiveSnap is one snapshot of the archive store and what its archives
// hold.
type archiveSnap struct {
	rel      string // mount-relative snapshot directory
	image    []byte // drive-scsi0.img
	imageIdx *index.Fixed
	stream   []byte // catalog.pcat1
	streamIx *index.Dynamic
	conf     []byte // qemu-server.conf
}

// archiveStore is a datastore with real chunks:
//
//	vm/100/…  plain: 10.5 chunks of 4 MiB (random, zero, text, repeats),
//	          a catalog stream of 12 variable chunks, a config blob, client.log
//	vm/101/…  the same kinds, encrypted with the key in keyPath (password
//	          password), manifest signed
//	vm/102/…  plain, for damage: a chunk of its image is removed and one of
//	          its stream is corrupted by the test
type archiveStore struct {
	dir      string
	keyPath  string
	password string
	key      *manifest.CryptConfig
	plain    *archiveSnap
	enc      *archiveSnap
	damaged  *archiveSnap
}

func newArchiveStore(t *testing.T) *archiveStore {
	t.Helper()
	dir, st := createTestStore(t)
	defer st.Close()
	k := newTestKey(t)
	as := &archiveStore{dir: dir, password: k.password, key: k.key, keyPath: k.path}
	as.plain = writeArchiveSnap(t, st, "100", 1, nil)
	as.enc = writeArchiveSnap(t, st, "101", 2, as.key)
	as.damaged = writeArchiveSnap(t, st, "102", 3, nil)
	return as
}

// createTestStore creates an empty datastore in a fresh directory and opens
// it for writing test snapshots (the caller closes it).
func createTestStore(t *testing.T) (string, *datastore.Store) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := datastore.Create(dir, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := datastore.Open(dir, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: storeName, UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	return dir, st
}

// testKey is an encryption key with its key file as PBS writes it,
// protected by password.
type testKey struct {
	key      *manifest.CryptConfig
	path     string
	password string
}

func newTestKey(t *testing.T) testKey {
	t.Helper()
	k := testKey{password: "integration-pass"}
	rawKey := make([]byte, 32)
	for i := range rawKey {
		rawKey[i] = byte(0xa0 + i)
	}
	var err error
	if k.key, err = manifest.NewCryptConfig(rawKey); err != nil {
		t.Fatal(err)
	}
	kdf, err := keyfile.DefaultKDF(keyfile.Scrypt)
	if err != nil {
		t.Fatal(err)
	}
	kdf.N = 4096 // cheaper than PBS's 65536, same code path
	kc, err := keyfile.New(rawKey, []byte(k.password), &kdf, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k.path = filepath.Join(t.TempDir(), "backup-key.json")
	if err := os.WriteFile(k.path, kc.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// keyMountArgs are the pbsfs arguments that give it key k.
func (k testKey) mountArgs(t *testing.T) []string {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(k.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--keyfile", k.path, "--password-file", pw}
}

func writeArchiveSnap(t *testing.T, st *datastore.Store, id string, seed uint64, key *manifest.CryptConfig) *archiveSnap {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString("/var/lib/vz/images/" + id + "/vm-disk-" + string(rune('a'+rng.IntN(26))) + ".raw 0644 root\n")
		}
		return b.Bytes()[:n]
	}
	s := &archiveSnap{rel: "vm/" + id + "/2024-06-05T14:22:01Z"}
	c0 := random(archiveChunk)
	for _, part := range [][]byte{c0, make([]byte, archiveChunk), text(archiveChunk), c0,
		random(archiveChunk), make([]byte, archiveChunk), text(archiveChunk), random(archiveChunk),
		make([]byte, archiveChunk), text(archiveChunk), random(archiveChunk / 2)} {
		s.image = append(s.image, part...)
	}
	var parts [][]byte
	for i := range 12 {
		var p []byte
		if i%2 == 0 {
			p = text(1 + rng.IntN(3<<20))
		} else {
			p = random(1 + rng.IntN(1<<20))
		}
		parts = append(parts, p)
		s.stream = append(s.stream, p...)
	}
	s.conf = []byte("boot: order=scsi0\ncores: 4\nmemory: 4096\nname: vm" + id + "\nscsi0: local-lvm:vm-" + id + "-disk-0,size=42M\n")

	g := datastore.Group{Type: "vm", ID: id}
	if err := st.CreateGroup(g, "root@pam"); err != nil {
		t.Fatal(err)
	}
	fi, fidx, err := st.BuildFixedIndex("drive-scsi0.img.fidx", s.image, archiveChunk, key)
	if err != nil {
		t.Fatal(err)
	}
	di, didx, err := st.BuildDynamicIndex("catalog.pcat1.didx", parts, key)
	if err != nil {
		t.Fatal(err)
	}
	bi, blob, err := datastore.BuildBlob("qemu-server.conf.blob", s.conf, key)
	if err != nil {
		t.Fatal(err)
	}
	_, logBlob, err := datastore.BuildBlob("client.log.blob", []byte("backup finished\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.imageIdx, err = index.ParseFixed(fidx); err != nil {
		t.Fatal(err)
	}
	if s.streamIx, err = index.ParseDynamic(didx); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.New("vm", id, 1717597321, []manifest.FileInfo{bi, fi, di})
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if err := m.Sign(key.IDKey()); err != nil {
			t.Fatal(err)
		}
	}
	sn := datastore.Snapshot{Group: g, Time: "2024-06-05T14:22:01Z"}
	files := map[string][]byte{fi.Filename: fidx, di.Filename: didx, bi.Filename: blob, "client.log.blob": logBlob}
	if err := st.WriteSnapshot(sn, m, files); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *archiveSnap) files() map[string][]byte {
	return map[string][]byte{"drive-scsi0.img": s.image, "catalog.pcat1": s.stream, "qemu-server.conf": s.conf}
}

// checkBytes compares a file of the mount with want: SHA-256 of a whole
// sequential read, then random ranges with pread.
func checkBytes(t *testing.T, p string, want []byte, ranges int) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != int64(len(want)) {
		t.Fatalf("%s: size %v (%v), want %d", p, fi.Size(), err, len(want))
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if got, exp := h.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, exp[:]) {
		t.Fatalf("%s: SHA-256 %x, want %x", p, got, exp)
	}
	rng := rand.New(rand.NewPCG(uint64(len(want)), 5))
	for range ranges {
		off := rng.Int64N(int64(len(want)))
		n := 1 + rng.IntN(256<<10)
		if rng.IntN(4) == 0 {
			n = 4096
			off &^= 4095
		}
		buf := make([]byte, n)
		k, err := f.ReadAt(buf, off)
		end := min(off+int64(n), int64(len(want)))
		if (err != nil && err != io.EOF) || int64(k) != end-off || !bytes.Equal(buf[:k], want[off:end]) {
			t.Fatalf("%s: pread(%d, %d) = %d, %v", p, off, n, k, err)
		}
	}
}

func TestArchives(t *testing.T) {
	as := newArchiveStore(t)

	// Damage vm/102: remove the image's 5th chunk (bytes 16–20 MiB, random
	// data: no other snapshot shares it) and flip a byte in the stream's
	// 4th chunk.
	missing := filepath.Join(as.dir, index.ChunkPath(as.damaged.imageIdx.Digests[4]))
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(as.dir, index.ChunkPath(as.damaged.streamIx.Entries[3].Digest))
	raw, err := os.ReadFile(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	if err := os.WriteFile(corrupt, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	m := startMount(t, as.dir) // archives are on by default

	t.Run("listing", func(t *testing.T) {
		names, err := readNames(m.path(as.plain.rel))
		want := []string{"catalog.pcat1", "client.log", "drive-scsi0.img", "manifest.json", "notes", "qemu-server.conf"}
		if err != nil || !equalStrings(names, want) {
			t.Errorf("ls %s = %q (%v), want %q", as.plain.rel, names, err, want)
		}
		for name, want := range as.plain.files() {
			fi, err := os.Stat(m.path(as.plain.rel, name))
			if err != nil || fi.Size() != int64(len(want)) || fi.Mode() != 0o444 {
				t.Errorf("stat %s: %v %v", name, fi, err)
			}
		}
		got, err := os.ReadFile(m.path(as.plain.rel, "client.log"))
		if err != nil || string(got) != "backup finished\n" {
			t.Errorf("client.log: %q %v", got, err)
		}
	})

	t.Run("plain", func(t *testing.T) {
		for name, want := range as.plain.files() {
			checkBytes(t, m.path(as.plain.rel, name), want, 200)
		}
		// A second pass comes from the cache (and the kernel's pages).
		checkBytes(t, m.path(as.plain.rel, "drive-scsi0.img"), as.plain.image, 50)
	})

	t.Run("read-only", func(t *testing.T) {
		p := m.path(as.plain.rel, "qemu-server.conf")
		_, err := os.OpenFile(p, os.O_WRONLY, 0)
		wantErrno(t, "open for writing", err, syscall.EACCES)
		wantErrno(t, "truncate", os.Truncate(p, 0), syscall.EACCES, syscall.EPERM)
		wantErrno(t, "remove", os.Remove(p), syscall.EACCES, syscall.EPERM)
	})

	t.Run("damaged", func(t *testing.T) {
		img := m.path(as.damaged.rel, "drive-scsi0.img")
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for _, off := range []int64{4 * archiveChunk, 4*archiveChunk + 12345, 5*archiveChunk - 4096} {
			_, err := f.ReadAt(buf, off)
			wantErrno(t, "pread in the missing chunk", err, syscall.EIO)
		}
		// Whole-file reads stop with EIO at the chunk, never with wrong bytes.
		got, err := io.ReadAll(f)
		wantErrno(t, "sequential read over the missing chunk", err, syscall.EIO)
		if len(got) > 4*archiveChunk || !bytes.Equal(got, as.damaged.image[:len(got)]) {
			t.Errorf("sequential read returned %d bytes, some not from before the missing chunk", len(got))
		}
		// The chunks around it are fine.
		for _, off := range []int64{0, 4*archiveChunk - 4096, 5 * archiveChunk, 10 * archiveChunk} {
			n, err := f.ReadAt(buf, off)
			if err != nil || !bytes.Equal(buf[:n], as.damaged.image[off:off+int64(n)]) {
				t.Errorf("pread(%d) next to the missing chunk: %v", off, err)
			}
		}
		e := as.damaged.streamIx.Entries
		start, end := e[2].End, e[3].End
		s, err := os.Open(m.path(as.damaged.rel, "catalog.pcat1"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.ReadAt(make([]byte, 100), int64(start+(end-start)/2))
		wantErrno(t, "pread in the corrupt chunk", err, syscall.EIO)
		// The kernel reads whole pages: the first page wholly after the
		// chunk.
		after := (end + 4095) &^ 4095
		n, err := s.ReadAt(buf, int64(after))
		if err != nil && err != io.EOF || !bytes.Equal(buf[:n], as.damaged.stream[after:int(after)+n]) {
			t.Errorf("pread after the corrupt chunk: %v", err)
		}
		// pbsfs says which chunks.
		eventually(t, "log lines naming the damaged chunks", func() (bool, string) {
			s := m.stderr.String()
			return strings.Contains(s, missing) && strings.Contains(s, corrupt), s
		})
	})

	t.Run("encrypted without key", func(t *testing.T) {
		for name, want := range as.enc.files() {
			p := m.path(as.enc.rel, name)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("stat %s: %v", name, err)
			}
			if name != "qemu-server.conf" && fi.Size() != int64(len(want)) {
				t.Errorf("%s: size %d, want %d", name, fi.Size(), len(want))
			}
			_, err = os.ReadFile(p)
			wantErrno(t, "read "+name+" without key", err, syscall.EACCES)
		}
		js, err := os.ReadFile(m.path(as.enc.rel, "manifest.json"))
		if err != nil || bytes.Contains(js, []byte("pbsfs-signature-check")) {
			t.Errorf("manifest.json without key: %v\n%s", err, js)
		}
	})
	m.stop()

	t.Run("with key", func(t *testing.T) {
		k := testKey{key: as.key, path: as.keyPath, password: as.password}
		mk := startMount(t, as.dir, append(k.mountArgs(t), "--archives", "--chunk-cache", "32")...)
		for name, want := range as.enc.files() {
			checkBytes(t, mk.path(as.enc.rel, name), want, 100)
		}
		// Unencrypted snapshots read as before.
		checkBytes(t, mk.path(as.plain.rel, "catalog.pcat1"), as.plain.stream, 20)
		for rel, want := range map[string]string{as.enc.rel: "valid", as.plain.rel: "unsigned"} {
			js, err := os.ReadFile(mk.path(rel, "manifest.json"))
			var v map[string]any
			if err != nil || json.Unmarshal(js, &v) != nil || v["pbsfs-signature-check"] != want {
				t.Errorf("%s/manifest.json: %v, signature check %v, want %s", rel, err, v["pbsfs-signature-check"], want)
			}
		}
		mk.stop()
	})

	t.Run("wrong password", func(t *testing.T) {
		pw := filepath.Join(t.TempDir(), "password")
		os.WriteFile(pw, []byte("not-the-password\n"), 0o600)
		mnt := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(mnt, 0o755)
		code, out := runPbsfs(t, "mount", "--lock-scheme", "run", "--lock-dir", t.TempDir(), "--store", storeName,
			"--archives", "--keyfile", as.keyPath, "--password-file", pw, as.dir, mnt)
		if code != 14 || !strings.Contains(out, "wrong password") {
			t.Errorf("exit %d, want 14:\n%s", code, out)
		}
		if isMounted(mnt) {
			t.Error("mounted despite the wrong password")
		}
	})
}

// With --no-archives (or --archives=false) the snapshot directories hold
// only notes and manifest.json, whatever the manifest lists.
func TestArchivesOff(t *testing.T) {
	as := newArchiveStore(t)
	for _, flag := range []string{"--no-archives", "--archives=false"} {
		m := startMount(t, as.dir, flag)
		names, err := readNames(m.path(as.plain.rel))
		if err != nil || !equalStrings(names, []string{"manifest.json", "notes"}) {
			t.Errorf("%s: ls = %q, %v", flag, names, err)
		}
		_, err = os.Stat(m.path(as.plain.rel, "drive-scsi0.img"))
		wantErrno(t, "stat archive with "+flag, err, syscall.ENOENT)
		m.stop()
	}
}
