package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// Fixture layout (root namespace unless noted):
//
//	vm/100/                    owner root@pam, group notes "group notes\n"
//	  2024-06-04T00:00:00Z/    corrupt (garbage index.json.blob)
//	  2024-06-05T14:22:01Z/    notes "first line\nsecond line\n"
//	  2024-06-06T14:22:01Z/    no notes
//	  2024-06-07T00:00:00Z/    unfinished (no manifest)
//	ct/200/2024-01-01T00:00:00Z/  protected, notes "keep me"
//	ns/prod/host/web/2024-03-03T03:03:03Z/
//	ns/prod/ns/db/vm/300/2024-04-04T04:04:04Z/
const (
	tCorrupt    = "2024-06-04T00:00:00Z"
	tFirst      = "2024-06-05T14:22:01Z"
	tSecond     = "2024-06-06T14:22:01Z"
	tUnfinished = "2024-06-07T00:00:00Z"
	firstNotes  = "first line\nsecond line\n"
	groupText   = "group notes\n"
)

type env struct {
	t     *testing.T
	ctx   context.Context
	fs    *FS
	store *datastore.Store
	base  string // datastore path
	locks string // lock directory
}

type envOpt func(*Options)

func readOnly(o *Options) { o.ReadOnly = true }

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "store")
	if err := datastore.Create(base, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	locks := filepath.Join(dir, "locks")
	open := func(ro bool) *datastore.Store {
		st, err := datastore.Open(base, datastore.Options{
			Lock:     lock.Config{Scheme: lock.Run, Dir: locks, Store: "test", UID: -1, GID: -1},
			ReadOnly: ro,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	w := open(false)
	vm100 := datastore.Group{Type: "vm", ID: "100"}
	ct200 := datastore.Group{Type: "ct", ID: "200"}
	web := datastore.Group{NS: datastore.NS{"prod"}, Type: "host", ID: "web"}
	db := datastore.Group{NS: datastore.NS{"prod", "db"}, Type: "vm", ID: "300"}
	for _, g := range []datastore.Group{vm100, ct200, web, db} {
		if err := w.CreateGroup(g, "root@pam"); err != nil {
			t.Fatal(err)
		}
	}
	writeSnap(t, w, datastore.Snapshot{Group: vm100, Time: tFirst}, firstNotes)
	writeSnap(t, w, datastore.Snapshot{Group: vm100, Time: tSecond}, "")
	if err := w.MakeSnapshotDir(datastore.Snapshot{Group: vm100, Time: tUnfinished}); err != nil {
		t.Fatal(err)
	}
	corrupt := datastore.Snapshot{Group: vm100, Time: tCorrupt}
	if err := w.MakeSnapshotDir(corrupt); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, corrupt.Dir(), datastore.ManifestName), []byte("this is not a blob at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.SetGroupNotes(context.Background(), vm100, groupText); err != nil {
		t.Fatal(err)
	}
	prot := datastore.Snapshot{Group: ct200, Time: "2024-01-01T00:00:00Z"}
	writeSnap(t, w, prot, "keep me")
	if err := os.WriteFile(filepath.Join(base, prot.Dir(), datastore.ProtectedName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeSnap(t, w, datastore.Snapshot{Group: web, Time: "2024-03-03T03:03:03Z"}, "web")
	writeSnap(t, w, datastore.Snapshot{Group: db, Time: "2024-04-04T04:04:04Z"}, "db")

	o := Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, fn := range opts {
		fn(&o)
	}
	store := w
	if o.ReadOnly {
		store = open(true)
	}
	return &env{t: t, ctx: context.Background(), fs: New(store, o), store: store, base: base, locks: locks}
}

func writeSnap(t *testing.T, st *datastore.Store, sn datastore.Snapshot, notes string) {
	t.Helper()
	conf := []byte("memory: 2048\ncores: 2\n")
	sum := sha256.Sum256(conf)
	epoch, err := timeOf(sn.Time)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.New(sn.Group.Type, sn.Group.ID, epoch, []manifest.FileInfo{
		{Filename: "qemu-server.conf.blob", CryptMode: "none", Csum: hex.EncodeToString(sum[:]), Size: uint64(len(conf))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if notes != "" {
		if err := m.Unprotected().SetNotes(notes); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.WriteSnapshot(sn, m, map[string][]byte{"qemu-server.conf.blob": conf}); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// walk looks up a slash-separated path from the root.
func (e *env) walk(p string) (fusefs.Node, error) {
	var n fusefs.Node = e.fs.root
	if p == "" {
		return n, nil
	}
	for _, name := range strings.Split(p, "/") {
		l, ok := n.(fusefs.NodeRequestLookuper)
		if !ok {
			return nil, errNotDir
		}
		var resp fuse.LookupResponse
		next, err := l.Lookup(e.ctx, &fuse.LookupRequest{Name: name}, &resp)
		if err != nil {
			return nil, err
		}
		if resp.EntryValid != e.fs.ttl {
			e.t.Errorf("lookup %s: EntryValid %v, want %v", name, resp.EntryValid, e.fs.ttl)
		}
		// bazil asks for the attributes right after every lookup.
		var a fuse.Attr
		if err := next.Attr(e.ctx, &a); err != nil {
			return nil, err
		}
		if a != resp.Attr {
			e.t.Errorf("lookup %s: attributes %v, then %v", name, resp.Attr, a)
		}
		n = next
	}
	return n, nil
}

func (e *env) node(p string) fusefs.Node {
	e.t.Helper()
	n, err := e.walk(p)
	if err != nil {
		e.t.Fatalf("lookup %s: %v", p, err)
	}
	return n
}

func (e *env) attr(n fusefs.Node) fuse.Attr {
	e.t.Helper()
	var a fuse.Attr
	if err := n.Attr(e.ctx, &a); err != nil {
		e.t.Fatalf("attr: %v", err)
	}
	return a
}

func (e *env) list(p string) []string {
	e.t.Helper()
	ents, err := e.node(p).(fusefs.HandleReadDirAller).ReadDirAll(e.ctx)
	if err != nil {
		e.t.Fatalf("readdir %s: %v", p, err)
	}
	var names []string
	for _, d := range ents {
		if d.Name != "." && d.Name != ".." {
			names = append(names, d.Name)
		}
	}
	return names
}

func (e *env) open(n fusefs.Node, flags fuse.OpenFlags) (fusefs.Handle, fuse.OpenResponseFlags, error) {
	var resp fuse.OpenResponse
	h, err := n.(fusefs.NodeOpener).Open(e.ctx, &fuse.OpenRequest{Flags: flags}, &resp)
	return h, resp.Flags, err
}

// read reads all of h from offset 0, in small requests to exercise offsets.
func (e *env) read(h fusefs.Handle) string {
	e.t.Helper()
	var out []byte
	for {
		var resp fuse.ReadResponse
		err := h.(fusefs.HandleReader).Read(e.ctx, &fuse.ReadRequest{Offset: int64(len(out)), Size: 7}, &resp)
		if err != nil {
			e.t.Fatalf("read: %v", err)
		}
		if len(resp.Data) == 0 {
			return string(out)
		}
		out = append(out, resp.Data...)
	}
}

// cat opens p read-only and reads it.
func (e *env) cat(p string) string {
	e.t.Helper()
	h, _, err := e.open(e.node(p), fuse.OpenReadOnly)
	if err != nil {
		e.t.Fatalf("open %s: %v", p, err)
	}
	return e.read(h)
}

func (e *env) write(h fusefs.Handle, off int64, data string, ffl fuse.OpenFlags) error {
	var resp fuse.WriteResponse
	err := h.(fusefs.HandleWriter).Write(e.ctx, &fuse.WriteRequest{Offset: off, Data: []byte(data), FileFlags: ffl}, &resp)
	if err == nil && resp.Size != len(data) {
		e.t.Errorf("write returned %d, want %d", resp.Size, len(data))
	}
	return err
}

func (e *env) setSize(n fusefs.Node, size uint64, withHandle bool) error {
	req := &fuse.SetattrRequest{Valid: fuse.SetattrSize, Size: size}
	if withHandle {
		req.Valid |= fuse.SetattrHandle
		req.Handle = 1
	}
	return n.(fusefs.NodeSetattrer).Setattr(e.ctx, req, &fuse.SetattrResponse{})
}

// flush is a close's FLUSH; a handle without Flush succeeds, as with bazil.
func (e *env) flush(h fusefs.Handle) error {
	f, ok := h.(fusefs.HandleFlusher)
	if !ok {
		return nil
	}
	return f.Flush(e.ctx, &fuse.FlushRequest{})
}

func (e *env) release(h fusefs.Handle) error {
	r, ok := h.(fusefs.HandleReleaser)
	if !ok {
		return nil
	}
	return r.Release(e.ctx, &fuse.ReleaseRequest{})
}

func (e *env) snapNotes(g datastore.Group, tm string) string {
	e.t.Helper()
	m, _, err := e.store.Manifest(datastore.Snapshot{Group: g, Time: tm})
	if err != nil {
		e.t.Fatal(err)
	}
	return m.Notes()
}

var vm100 = datastore.Group{Type: "vm", ID: "100"}

// errnoOf extracts the errno of an error returned by a node method.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var fe fuse.Errno
	if errors.As(err, &fe) {
		return syscall.Errno(fe)
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		return se
	}
	return syscall.Errno(fuse.DefaultErrno)
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if got := errnoOf(err); got != want {
		t.Errorf("%s: got errno %v (%v), want %v", what, got, err, want)
	}
}
