package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// archiveEnv is a store with one snapshot holding real archives:
// vm/100/<tFirst>/ with qemu-server.conf.blob, drive-scsi0.img.fidx (3.5
// chunks of 64 KiB) and catalog.pcat1.didx, encrypted with key when it is not
// nil. The file system is opened with the archive options o.
type archiveEnv struct {
	*env
	sn     datastore.Snapshot
	conf   []byte
	image  []byte
	stream []byte
}

func newArchiveEnv(t *testing.T, key *manifest.CryptConfig, o datastore.ArchiveOptions) *archiveEnv {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "store")
	if err := datastore.Create(base, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	locks := filepath.Join(dir, "locks")
	open := func(o datastore.ArchiveOptions) *datastore.Store {
		st, err := datastore.Open(base, datastore.Options{
			Lock:     lock.Config{Scheme: lock.Run, Dir: locks, Store: "test", UID: -1, GID: -1},
			Archives: o,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	w := open(datastore.ArchiveOptions{})
	ae := &archiveEnv{sn: datastore.Snapshot{Group: vm100, Time: tFirst}}
	if err := w.CreateGroup(vm100, "root@pam"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ae.image = make([]byte, 3*65536+32768)
	for i := range ae.image[:65536] {
		ae.image[i] = byte(rng.Uint32() >> 28)
	}
	copy(ae.image[2*65536:], ae.image[:65536])
	var parts [][]byte
	for _, n := range []int{100, 70000, 3} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		parts = append(parts, p)
		ae.stream = append(ae.stream, p...)
	}
	ae.conf = []byte("cores: 4\nmemory: 8192\n")
	fi, fidx, err := w.BuildFixedIndex("drive-scsi0.img.fidx", ae.image, 65536, key)
	if err != nil {
		t.Fatal(err)
	}
	di, didx, err := w.BuildDynamicIndex("catalog.pcat1.didx", parts, key)
	if err != nil {
		t.Fatal(err)
	}
	bi, blob, err := datastore.BuildBlob("qemu-server.conf.blob", ae.conf, key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.New("vm", "100", 1717597321, []manifest.FileInfo{bi, fi, di})
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if err := m.Sign(key.IDKey()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteSnapshot(ae.sn, m, map[string][]byte{bi.Filename: blob, fi.Filename: fidx, di.Filename: didx}); err != nil {
		t.Fatal(err)
	}
	if err := w.MakeSnapshotDir(datastore.Snapshot{Group: vm100, Time: tUnfinished}); err != nil {
		t.Fatal(err)
	}
	store := open(o)
	fo := Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ae.env = &env{t: t, ctx: context.Background(), fs: New(store, fo), store: store, base: base, locks: locks}
	return ae
}

var snapRel = "vm/100/" + tFirst

// readAll reads a handle in requests of size bytes.
func (e *env) readAll(h fusefs.Handle, size int) ([]byte, error) {
	var out []byte
	for {
		var resp fuse.ReadResponse
		err := h.(fusefs.HandleReader).Read(e.ctx, &fuse.ReadRequest{Offset: int64(len(out)), Size: size}, &resp)
		if err != nil {
			return out, err
		}
		if len(resp.Data) == 0 {
			return out, nil
		}
		out = append(out, resp.Data...)
	}
}

func TestArchiveFiles(t *testing.T) {
	e := newArchiveEnv(t, nil, datastore.ArchiveOptions{Enabled: true})
	got := e.list(snapRel)
	want := []string{ManifestName, NotesName, "qemu-server.conf", "drive-scsi0.img", "catalog.pcat1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ls = %q, want %q", got, want)
	}
	for name, content := range map[string][]byte{"qemu-server.conf": e.conf, "drive-scsi0.img": e.image, "catalog.pcat1": e.stream} {
		n := e.node(snapRel + "/" + name)
		a := e.attr(n)
		if a.Size != uint64(len(content)) || a.Mode != 0o444 || a.Valid < archiveAttrValid || a.Nlink != 1 {
			t.Errorf("%s: attr %v", name, a)
		}
		h, flags, err := e.open(n, fuse.OpenReadOnly)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if flags&fuse.OpenDirectIO != 0 {
			t.Errorf("%s: direct I/O", name)
		}
		for _, size := range []int{4096, 131072, 100000} {
			data, err := e.readAll(h, size)
			if err != nil || !bytes.Equal(data, content) {
				t.Errorf("%s: read in %d-byte requests: %d bytes, %v", name, size, len(data), err)
			}
		}
		// Second open: the kernel may keep its pages.
		if _, flags, _ := e.open(n, fuse.OpenReadOnly); flags&fuse.OpenKeepCache == 0 {
			t.Errorf("%s: second open without KeepCache", name)
		}
		for _, fl := range []fuse.OpenFlags{fuse.OpenWriteOnly, fuse.OpenReadWrite, fuse.OpenReadOnly | fuse.OpenTruncate} {
			_, _, err := e.open(n, fl)
			wantErrno(t, "open "+name+" "+fl.String(), err, syscall.EACCES)
		}
		err = n.(fusefs.NodeSetattrer).Setattr(e.ctx, &fuse.SetattrRequest{Valid: fuse.SetattrSize}, &fuse.SetattrResponse{})
		wantErrno(t, "truncate "+name, err, syscall.EACCES)
	}
	// Archive names are reserved: no removing, renaming or creating.
	d := e.node(snapRel).(*snapDir)
	wantErrno(t, "rm archive", d.Remove(e.ctx, &fuse.RemoveRequest{Name: "catalog.pcat1"}), syscall.EPERM)
	wantErrno(t, "mv archive", d.Rename(e.ctx, &fuse.RenameRequest{OldName: "catalog.pcat1", NewName: "x"}, d), syscall.EPERM)
	_, _, err := d.Create(e.ctx, &fuse.CreateRequest{Name: "drive-scsi0.img", Flags: fuse.OpenWriteOnly | fuse.OpenCreate, Mode: 0o644}, &fuse.CreateResponse{})
	if errnoOf(err) == 0 {
		t.Error("create over an archive name succeeded")
	}
	// The same node for the same name (until forgotten).
	if e.node(snapRel+"/drive-scsi0.img") != e.node(snapRel+"/drive-scsi0.img") {
		t.Error("lookup returns a new node each time")
	}
	// Names that are not shown.
	for _, name := range []string{"drive-scsi0.img.fidx", "qemu-server.conf.blob", "catalog.pcat1.didx", "index.json.blob"} {
		_, err := e.walk(snapRel + "/" + name)
		wantErrno(t, "lookup "+name, err, syscall.ENOENT)
	}
	// Unfinished snapshots show nothing.
	if got := e.list("vm/100/" + tUnfinished); len(got) != 0 {
		t.Errorf("unfinished: %q", got)
	}
}

func TestArchiveFilesDisabled(t *testing.T) {
	e := newArchiveEnv(t, nil, datastore.ArchiveOptions{})
	if got := e.list(snapRel); strings.Join(got, " ") != ManifestName+" "+NotesName {
		t.Errorf("ls = %q", got)
	}
	_, err := e.walk(snapRel + "/drive-scsi0.img")
	wantErrno(t, "lookup while disabled", err, syscall.ENOENT)
}

func TestArchiveFilesDamaged(t *testing.T) {
	e := newArchiveEnv(t, nil, datastore.ArchiveOptions{Enabled: true, CacheBytes: -1})
	n := e.node(snapRel + "/drive-scsi0.img")
	h, _, err := e.open(n, fuse.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	// Remove the chunk of [65536, 131072) (the zero chunk).
	idx, err := os.ReadFile(filepath.Join(e.base, e.sn.Dir(), "drive-scsi0.img.fidx"))
	if err != nil {
		t.Fatal(err)
	}
	fx, err := index.ParseFixed(idx)
	if err != nil {
		t.Fatal(err)
	}
	chunk := filepath.Join(e.base, index.ChunkPath(fx.Digests[1]))
	if err := os.Remove(chunk); err != nil {
		t.Fatal(err)
	}
	read := func(off int64, size int) ([]byte, error) {
		var resp fuse.ReadResponse
		err := h.(fusefs.HandleReader).Read(e.ctx, &fuse.ReadRequest{Offset: off, Size: size}, &resp)
		return resp.Data, err
	}
	for _, r := range [][2]int64{{65536, 4096}, {65536 - 100, 200}, {131072 - 1, 2}} {
		data, err := read(r[0], int(r[1]))
		wantErrno(t, "read missing chunk", err, syscall.EIO)
		if data != nil {
			t.Errorf("read %v returned data with the error", r)
		}
	}
	if data, err := read(0, 4096); err != nil || !bytes.Equal(data, e.image[:4096]) {
		t.Errorf("intact chunk: %v", err)
	}
	if data, err := read(131072, 4096); err != nil || !bytes.Equal(data, e.image[131072:131072+4096]) {
		t.Errorf("chunk after: %v", err)
	}
	// An index that does not match the manifest: EIO at open.
	other := &index.Fixed{Size: fx.Size, ChunkSize: fx.ChunkSize, Digests: make([][32]byte, len(fx.Digests))}
	p := filepath.Join(e.base, e.sn.Dir(), "drive-scsi0.img.fidx")
	time.Sleep(10 * time.Millisecond) // a new mtime even on coarse clocks
	if err := os.WriteFile(p+".new", other.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.open(n, fuse.OpenReadOnly)
	wantErrno(t, "open mismatched index", err, syscall.EIO)
	// A missing index file: the lookup says EIO, not "no such file".
	os.Remove(p)
	_, err = e.walk(snapRel + "/drive-scsi0.img")
	wantErrno(t, "lookup missing index", err, syscall.EIO)
}

func TestArchiveFilesEncrypted(t *testing.T) {
	key, err := manifest.NewCryptConfig(bytes.Repeat([]byte{42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no key", func(t *testing.T) {
		e := newArchiveEnv(t, key, datastore.ArchiveOptions{Enabled: true})
		for _, name := range []string{"qemu-server.conf", "drive-scsi0.img", "catalog.pcat1"} {
			n := e.node(snapRel + "/" + name)
			a := e.attr(n)
			if a.Mode != 0o444 {
				t.Errorf("%s: mode %v", name, a.Mode)
			}
			_, _, err := e.open(n, fuse.OpenReadOnly)
			wantErrno(t, "open "+name, err, syscall.EACCES)
		}
		if a := e.attr(e.node(snapRel + "/drive-scsi0.img")); a.Size != uint64(len(e.image)) {
			t.Errorf("image size %d", a.Size)
		}
	})
	t.Run("key", func(t *testing.T) {
		e := newArchiveEnv(t, key, datastore.ArchiveOptions{Enabled: true, Crypt: key})
		for name, content := range map[string][]byte{"qemu-server.conf": e.conf, "drive-scsi0.img": e.image, "catalog.pcat1": e.stream} {
			h, _, err := e.open(e.node(snapRel+"/"+name), fuse.OpenReadOnly)
			if err != nil {
				t.Fatalf("open %s: %v", name, err)
			}
			if data, err := e.readAll(h, 65536); err != nil || !bytes.Equal(data, content) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if js := e.cat(snapRel + "/" + ManifestName); !strings.Contains(js, `"`+datastore.SignatureCheckKey+`": "valid"`) {
			t.Errorf("manifest.json:\n%s", js)
		}
		// The size shown is the size read.
		if a := e.attr(e.node(snapRel + "/" + ManifestName)); a.Size != uint64(len(e.cat(snapRel+"/"+ManifestName))) {
			t.Errorf("manifest.json size %d", a.Size)
		}
	})
}

func TestMountArchives(t *testing.T) {
	e := newArchiveEnv(t, nil, datastore.ArchiveOptions{Enabled: true})
	mnt := mountEnv(t, e.env)
	sum := sha256.Sum256(e.image)
	out := mustSh(t, mnt, "sha256sum "+snapRel+"/drive-scsi0.img; cat "+snapRel+"/qemu-server.conf; "+
		"dd if="+snapRel+"/catalog.pcat1 bs=1 skip=99 count=5 2>/dev/null | od -An -tx1")
	if !strings.Contains(out, hex.EncodeToString(sum[:])) || !strings.Contains(out, string(e.conf)) {
		t.Errorf("output:\n%s", out)
	}
	var wantHex []string
	for _, b := range e.stream[99:104] {
		wantHex = append(wantHex, hex.EncodeToString([]byte{b}))
	}
	if !strings.Contains(out, strings.Join(wantHex, " ")) {
		t.Errorf("dd of catalog.pcat1: %s, want %s", out, wantHex)
	}
	out = mustSh(t, mnt, "ls -l "+snapRel)
	for _, name := range []string{"drive-scsi0.img", "catalog.pcat1", "qemu-server.conf", "manifest.json", "notes"} {
		if !strings.Contains(out, name) {
			t.Errorf("ls -l lacks %s:\n%s", name, out)
		}
	}
	if _, err := sh(t, mnt, "echo x > "+snapRel+"/qemu-server.conf"); err == nil {
		t.Error("write to an archive succeeded")
	}
}
