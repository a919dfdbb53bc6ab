package fs

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"

	"bazil.org/fuse"

	"pbsfs/datastore"
)

// A manifest.json handle opened with OpenKeepCache loads the JSON at its
// first READ, and only if the manifest is still the file the open saw:
// otherwise the kernel's size for the open would not match (ErrStale,
// ESTALE to the reader).
func TestManifestHandleLoadsWhatTheOpenSaw(t *testing.T) {
	e := newEnv(t)
	sn := datastore.Snapshot{Group: vm100, Time: tFirst}
	n := newManifestFile(e.fs, newSnapDir(e.fs, sn.Dir(), sn))
	st, err := e.fs.store.ManifestStamp(sn)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := e.fs.store.ManifestJSON(sn)
	if err != nil {
		t.Fatal(err)
	}
	fresh := &manifestHandle{n: n, st: st}
	stale := &manifestHandle{n: n, st: st}
	var resp fuse.ReadResponse
	if err := fresh.Read(context.Background(), &fuse.ReadRequest{Offset: 0, Size: 1 << 20}, &resp); err != nil || !bytes.Equal(resp.Data, want) {
		t.Fatalf("read of an unchanged manifest: %v (%d of %d bytes)", err, len(resp.Data), len(want))
	}
	if err := e.fs.store.SetNotes(context.Background(), sn, "changed after the open"); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.load(); !errors.Is(err, datastore.ErrStale) {
		t.Errorf("load after the manifest was replaced: %v, want ErrStale", err)
	}
	if err := stale.Read(context.Background(), &fuse.ReadRequest{Size: 4096}, &resp); !errors.Is(err, fuse.Errno(syscall.ESTALE)) {
		t.Errorf("READ after the manifest was replaced: %v, want ESTALE", err)
	}
	// A handle that loaded before the change keeps serving what it loaded.
	if err := fresh.Read(context.Background(), &fuse.ReadRequest{Offset: 10, Size: 20}, &resp); err != nil || !bytes.Equal(resp.Data, want[10:30]) {
		t.Errorf("second read of a loaded handle: %v %q", err, resp.Data)
	}
}
