package demo

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbsfs/index"
	"pbsfs/keyfile"
	"pbsfs/manifest"
	"pbsfs/pxar/encoder"
)

// snapRef splits a datastore-relative snapshot directory
// ("ns/a/ns/b/vm/100/2024-...Z") into namespace, type, id and time.
func snapRef(t *testing.T, rel string) (ns []string, typ, id, tm string) {
	t.Helper()
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for len(parts) > 3 && parts[0] == "ns" {
		ns = append(ns, parts[1])
		parts = parts[2:]
	}
	if len(parts) != 3 {
		t.Fatalf("unexpected snapshot path %q", rel)
	}
	return ns, parts[0], parts[1], parts[2]
}

// Magics of the two encrypted DataBlob variants (pbs-format.md §1.1).
var (
	magicEncrypted = [8]byte{123, 103, 133, 190, 34, 45, 76, 240}
	magicEncrCompr = [8]byte{230, 89, 27, 191, 11, 191, 216, 11}
)

// chunkDigest is PBS's compute_digest, written independently of package
// manifest: SHA-256 of the plain data, with the id key appended for
// encrypted chunks.
func chunkDigest(data, idKey []byte) [32]byte {
	if idKey == nil {
		return sha256.Sum256(data)
	}
	return sha256.Sum256(append(append([]byte{}, data...), idKey...))
}

// decryptBlob is an independent decoder for encrypted DataBlobs (AES-256-GCM
// with a 16-byte IV, tag in the header, zstd inside for the compressed magic).
func decryptBlob(t *testing.T, raw, key []byte) []byte {
	t.Helper()
	if len(raw) < 44 {
		t.Fatalf("encrypted blob too small: %d", len(raw))
	}
	var magic [8]byte
	copy(magic[:], raw)
	if magic != magicEncrypted && magic != magicEncrCompr {
		t.Fatalf("not an encrypted blob magic: %x", magic)
	}
	if got, want := crc32.ChecksumIEEE(raw[44:]), uint32(raw[8])|uint32(raw[9])<<8|uint32(raw[10])<<16|uint32(raw[11])<<24; got != want {
		t.Fatalf("crc %08x != %08x", got, want)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, 16)
	if err != nil {
		t.Fatal(err)
	}
	sealed := append(append([]byte{}, raw[44:]...), raw[28:44]...)
	plain, err := gcm.Open(nil, raw[12:28], sealed, nil)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	if magic == magicEncrCompr {
		dec, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		plain, err = dec.DecodeAll(plain, nil)
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
	}
	return plain
}

// chunkLens caches the decoded length of chunks already checked (the zero
// chunk of a sparse disk is referenced thousands of times).
type chunkLens map[[32]byte]int

// checkChunk loads a chunk, checks its digest and returns its decoded length
// and, for the first chunk seen, its data.
func checkChunk(t *testing.T, seen chunkLens, base string, d [32]byte, encrypted bool, idKey []byte) (int, []byte) {
	t.Helper()
	if n, ok := seen[d]; ok {
		return n, nil
	}
	raw, err := os.ReadFile(filepath.Join(base, index.ChunkPath(d)))
	if err != nil {
		t.Fatalf("chunk %x: %v", d, err)
	}
	var data []byte
	if encrypted {
		data = decryptBlob(t, raw, DemoKey())
		if chunkDigest(data, idKey) != d {
			t.Fatalf("encrypted chunk %x: wrong digest", d)
		}
	} else {
		data, err = manifest.DecodeBlob(raw)
		if err != nil {
			t.Fatalf("chunk %x: %v", d, err)
		}
		if sha256.Sum256(data) != d {
			t.Fatalf("chunk %x: wrong digest", d)
		}
	}
	seen[d] = len(data)
	return len(data), data
}

func TestSample(t *testing.T) {
	base := filepath.Join(t.TempDir(), "store")
	sum, err := Sample(base)
	if err != nil {
		t.Fatal(err)
	}
	specs := sampleGroups()
	wantSnaps := 0
	for _, g := range specs {
		wantSnaps += len(g.snaps)
	}
	if sum.Namespaces != 3 || sum.Groups != len(specs) || sum.Snapshots != wantSnaps {
		t.Errorf("summary = %+v, want 3 namespaces, %d groups, %d snapshots", sum, len(specs), wantSnaps)
	}
	if len(sum.Notes) == 0 {
		t.Error("summary lists no notes")
	}
	for _, n := range sum.Notes {
		if !strings.HasSuffix(n, "/notes") {
			t.Errorf("notes path %q", n)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, ".chunks")); err != nil || !fi.IsDir() {
		t.Fatalf(".chunks: %v", err)
	}

	// Decode every manifest found on disk, independently of datastore.
	idKey := manifest.DeriveIDKey(DemoKey())
	manifests := map[string]*manifest.Manifest{}
	var blobs, chunks int
	err = filepath.WalkDir(base, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if de.IsDir() || strings.HasPrefix(rel, ".chunks") {
			if !de.IsDir() {
				// every chunk is a valid blob (CRC checked)
				raw, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if _, err := manifest.ParseBlob(raw); err != nil {
					t.Errorf("chunk %s: %v", rel, err)
				}
				chunks++
			}
			return nil
		}
		if strings.HasSuffix(rel, ".blob") {
			blobs++
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if _, err := manifest.ParseBlob(raw); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		}
		if filepath.Base(rel) != "index.json.blob" {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m, err := manifest.Load(raw)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		manifests[filepath.ToSlash(filepath.Dir(rel))] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if chunks == 0 || blobs == 0 {
		t.Errorf("found %d chunks, %d blobs", chunks, blobs)
	}
	if len(manifests) != wantSnaps-1 { // one snapshot is unfinished
		t.Errorf("found %d manifests, want %d", len(manifests), wantSnaps-1)
	}

	seen := map[string]bool{}
	seenChunks := chunkLens{}
	for _, gs := range specs {
		gdir := ""
		for _, c := range gs.ns {
			gdir += "ns/" + c + "/"
		}
		gdir += gs.typ + "/" + gs.id
		owner, err := os.ReadFile(filepath.Join(base, gdir, "owner"))
		if err != nil || string(owner) != gs.owner+"\n" {
			t.Errorf("%s owner = %q, %v; want %q", gdir, owner, err, gs.owner+"\n")
		}
		gnotes, err := os.ReadFile(filepath.Join(base, gdir, "notes"))
		if gs.notes == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: unexpected group notes %q (%v)", gdir, gnotes, err)
			}
		} else if string(gnotes) != gs.notes {
			t.Errorf("%s group notes = %q, %v; want %q", gdir, gnotes, err, gs.notes)
		}
		for _, ss := range gs.snaps {
			sdir := gdir + "/" + ss.time
			seen[sdir] = true
			_, err := os.Stat(filepath.Join(base, sdir, ".protected"))
			if ss.protected != (err == nil) {
				t.Errorf("%s: protected = %v, stat .protected: %v", sdir, ss.protected, err)
			}
			m, ok := manifests[sdir]
			if ss.unfinished {
				if ok {
					t.Errorf("%s: unfinished snapshot has a manifest", sdir)
				}
				ents, err := os.ReadDir(filepath.Join(base, sdir))
				if err != nil || len(ents) == 0 {
					t.Errorf("%s: unfinished snapshot dir: %v, %d entries", sdir, err, len(ents))
				}
				continue
			}
			if !ok {
				t.Errorf("%s: no manifest", sdir)
				continue
			}
			checkSampleManifest(t, seenChunks, base, sdir, ss, m, idKey)
		}
	}
	for sdir := range manifests {
		if !seen[sdir] {
			t.Errorf("unexpected snapshot %s", sdir)
		}
	}
	for _, special := range []string{SampleProtected, SampleUnfinished, SampleEncrypted} {
		if !seen[special] {
			t.Errorf("special snapshot %s not in the sample", special)
		}
	}
	if _, err := os.Stat(filepath.Join(base, SampleUnfinished, "index.json.blob")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unfinished snapshot: %v", err)
	}
}

func checkSampleManifest(t *testing.T, seenChunks chunkLens, base, sdir string, ss snapSpec, m *manifest.Manifest, idKey []byte) {
	t.Helper()
	ns, typ, id, tm := snapRef(t, sdir)
	_ = ns
	if m.BackupType() != typ || m.BackupID() != id || snapshotTime(m.BackupTime()) != tm {
		t.Errorf("%s: manifest says %s/%s/%s", sdir, m.BackupType(), m.BackupID(), snapshotTime(m.BackupTime()))
	}
	if m.Notes() != ss.notes {
		t.Errorf("%s: notes = %q, want %q", sdir, m.Notes(), ss.notes)
	}
	u := m.Unprotected()
	if raw, ok := u.Get("chunk_upload_stats"); !ok {
		t.Errorf("%s: no chunk_upload_stats", sdir)
	} else {
		var st map[string]uint64
		if err := json.Unmarshal(raw, &st); err != nil || len(st) != 4 || st["count"] == 0 || st["size"] == 0 {
			t.Errorf("%s: chunk_upload_stats = %s (%v)", sdir, raw, err)
		}
	}
	raw, ok := u.Get("verify_state")
	if (ss.verify != "") != ok {
		t.Errorf("%s: verify_state present = %v, want %q", sdir, ok, ss.verify)
	}
	if ok {
		var vs struct{ State, Upid string }
		if err := json.Unmarshal(raw, &vs); err != nil || vs.State != ss.verify || !strings.HasPrefix(vs.Upid, "UPID:pbs:") || !strings.HasSuffix(vs.Upid, ":root@pam:") {
			t.Errorf("%s: verify_state = %s (%v)", sdir, raw, err)
		}
	}
	sig, signed := m.Signature()
	if signed != ss.encrypted {
		t.Errorf("%s: signed = %v, want %v", sdir, signed, ss.encrypted)
	}
	if ss.encrypted {
		if err := m.CheckSignature(idKey); err != nil {
			t.Errorf("%s: signature %s: %v", sdir, sig, err)
		}
		fp, ok := u.Get("key-fingerprint")
		want, _ := json.Marshal(manifest.Fingerprint(DemoKey()))
		if !ok || !bytes.Equal(fp, want) {
			t.Errorf("%s: key-fingerprint = %s, want %s", sdir, fp, want)
		}
	}
	archives := []string{"root.pxar.didx", "catalog.pcat1.didx"}
	if ss.split {
		archives = []string{"root.mpxar.didx", "root.ppxar.didx"}
	}
	wantFiles := map[string][]string{
		"vm":   {"qemu-server.conf.blob", "drive-scsi0.img.fidx"},
		"ct":   append([]string{"pct.conf.blob"}, archives...),
		"host": archives,
	}[typ]
	files := m.Files()
	if len(files) != len(wantFiles) {
		t.Fatalf("%s: files %+v, want %v", sdir, files, wantFiles)
	}
	for i, fi := range files {
		if fi.Filename != wantFiles[i] {
			t.Errorf("%s: file %d = %s, want %s", sdir, i, fi.Filename, wantFiles[i])
		}
		enc := fi.CryptMode == "encrypt"
		if enc != ss.encrypted || (!enc && fi.CryptMode != "none") {
			t.Errorf("%s/%s: crypt-mode %q", sdir, fi.Filename, fi.CryptMode)
		}
		raw, err := os.ReadFile(filepath.Join(base, sdir, fi.Filename))
		if err != nil {
			t.Errorf("%s: %v", sdir, err)
			continue
		}
		var csum [32]byte
		var size uint64
		switch filepath.Ext(fi.Filename) {
		case ".blob":
			csum, size = sha256.Sum256(raw), uint64(len(raw))
			if enc {
				conf := decryptBlob(t, raw, DemoKey())
				if !bytes.Contains(conf, []byte("name: ")) {
					t.Errorf("%s/%s: decrypted config %q", sdir, fi.Filename, conf)
				}
			} else if _, err := manifest.DecodeBlob(raw); err != nil {
				t.Errorf("%s/%s: %v", sdir, fi.Filename, err)
			}
		case ".fidx":
			fx, err := index.ParseFixed(raw)
			if err != nil {
				t.Errorf("%s/%s: %v", sdir, fi.Filename, err)
				continue
			}
			csum, size = fx.ComputeCsum(), fx.Size
			if fx.Csum != csum || fx.Ctime != m.BackupTime() {
				t.Errorf("%s/%s: header csum/ctime mismatch", sdir, fi.Filename)
			}
			for i, d := range fx.Digests {
				n, data := checkChunk(t, seenChunks, base, d, enc, idKey)
				want := fx.ChunkSize
				if i == len(fx.Digests)-1 {
					want = fx.Size - uint64(i)*fx.ChunkSize
				}
				if uint64(n) != want {
					t.Fatalf("%s/%s: chunk %d has %d bytes, want %d", sdir, fi.Filename, i, n, want)
				}
				if i == 0 && data != nil && (data[510] != 0x55 || data[511] != 0xaa) {
					t.Errorf("%s/%s: no MBR signature", sdir, fi.Filename)
				}
			}
		case ".didx":
			dx, err := index.ParseDynamic(raw)
			if err != nil {
				t.Errorf("%s/%s: %v", sdir, fi.Filename, err)
				continue
			}
			csum, size = dx.ComputeCsum()
			var start uint64
			for i, e := range dx.Entries {
				n, data := checkChunk(t, seenChunks, base, e.Digest, enc, idKey)
				if uint64(n) != e.End-start {
					t.Fatalf("%s/%s: chunk %d has %d bytes, want %d", sdir, fi.Filename, i, n, e.End-start)
				}
				if i == 0 && data != nil && strings.HasPrefix(fi.Filename, "catalog.") && !bytes.HasPrefix(data, encoder.CatalogMagic[:]) {
					t.Errorf("%s/%s: no catalog magic", sdir, fi.Filename)
				}
				start = e.End
			}
		}
		if hex.EncodeToString(csum[:]) != fi.Csum || size != fi.Size {
			t.Errorf("%s/%s: csum/size %x/%d, manifest %s/%d", sdir, fi.Filename, csum, size, fi.Csum, fi.Size)
		}
	}
}

func TestSampleRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Sample(dir); err == nil {
		t.Fatal("Sample into a non-empty directory succeeded")
	}
	// an existing empty directory is fine
	empty := t.TempDir()
	if _, err := Sample(empty); err != nil {
		t.Fatal(err)
	}
}

func TestDemoKey(t *testing.T) {
	k := DemoKey()
	if len(k) != 32 {
		t.Fatalf("key length %d", len(k))
	}
	k[0] ^= 0xff
	if bytes.Equal(k, DemoKey()) {
		t.Fatal("DemoKey returns shared storage")
	}
}

func TestWriteKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "demo-key.json")
	if err := WriteKeyFile(p); err != nil {
		t.Fatal(err)
	}
	kc, err := keyfile.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if kc.Encrypted() {
		t.Error("demo key file is password protected")
	}
	key, fp, err := kc.Decrypt(nil)
	if err != nil || !bytes.Equal(key, DemoKey()) {
		t.Fatalf("decrypt: %x, %v", key, err)
	}
	if fp != manifest.Fingerprint(DemoKey()) {
		t.Errorf("fingerprint %s", fp)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: %v %v", fi.Mode(), err)
	}
	if err := WriteKeyFile(p); err == nil {
		t.Error("an existing key file was overwritten")
	}
}
