package datastore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"pbsfs/manifest"
	"pbsfs/s3store"
	"pbsfs/s3store/s3test"
)

// s3srv is the S3 server of this package's tests (a real weed server).
var s3srv s3test.Server

// bucketStore writes a local store with archives (writeArchives) and group
// notes, uploads it as PBS 4 lays a datastore out in a bucket, and opens
// it from there with OpenS3.
func bucketStore(t *testing.T) (local, remote *Store, d *archiveData) {
	t.Helper()
	srv := s3srv.Need(t)
	local = openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	d = writeArchives(t, local, "100", nil)
	addSnapshot(t, local, snap(NS{"dev"}, "ct", "200", "2024-01-01T00:00:00Z"), "ct notes\n")
	if err := local.SetGroupNotes(context.Background(), d.sn.Group, "group notes\n"); err != nil {
		t.Fatal(err)
	}
	ep := s3store.Endpoint{URL: srv.Endpoint(), PathStyle: true,
		Credentials: s3store.Credentials{AccessKey: srv.AccessKey, SecretKey: s3store.NewSecret(srv.SecretKey)}}
	loc := s3store.Location{Bucket: "ds-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), Store: "store1"}
	w, err := s3store.New(ep, loc, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s3store.Upload(context.Background(), w, local.Path(), "pbs-test"); err != nil {
		t.Fatal(err)
	}
	b, err := s3store.Open(context.Background(), ep, loc, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	remote, err = OpenS3(b, Options{Archives: ArchiveOptions{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Close() })
	return local, remote, d
}

// TestS3BackendMatchesLocal reads the same datastore from its directory
// and from its bucket through the Store API: the tree, manifests, notes,
// owner and every archive's bytes agree, and stamps are stable between a
// stat and a read of the same object.
func TestS3BackendMatchesLocal(t *testing.T) {
	local, remote, d := bucketStore(t)
	if !remote.ReadOnly() || remote.Locker() != nil || !strings.HasPrefix(remote.Path(), "s3://") {
		t.Fatalf("bucket store: read-only %v, locker %v, path %q", remote.ReadOnly(), remote.Locker(), remote.Path())
	}
	// Default chunk caches: a bucket's is larger, room for its deeper
	// read-ahead (readAhead skips chunks the cache could not keep).
	if got := local.ChunkCacheBytes(); got != DefaultChunkCache {
		t.Errorf("local store's chunk cache %d, want %d", got, DefaultChunkCache)
	}
	if got := remote.ChunkCacheBytes(); got != DefaultBucketChunkCache || got < (s3ReadAhead+1)*(4<<20) {
		t.Errorf("bucket store's chunk cache %d, want %d, room for %d chunks of 4 MiB", got, DefaultBucketChunkCache, s3ReadAhead+1)
	}
	tree := func(s *Store) string {
		var b strings.Builder
		var walk func(ns NS)
		walk = func(ns NS) {
			types, err := s.ListTypes(ns)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range types {
				ids, err := s.ListGroups(ns, typ)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					g := Group{NS: ns, Type: typ, ID: id}
					notes, _, err := s.GroupNotes(g)
					if err != nil {
						t.Fatal(err)
					}
					owner, _, err := s.GroupOwner(g)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&b, "%s notes=%q owner=%q\n", g.Dir(), notes, owner)
					snaps, err := s.ListSnapshots(g)
					if err != nil {
						t.Fatal(err)
					}
					for _, tm := range snaps {
						sn := Snapshot{Group: g, Time: tm}
						js, _, err := s.ManifestJSON(sn)
						if err != nil {
							t.Fatal(err)
						}
						list, _, err := s.ListArchives(sn)
						if err != nil {
							t.Fatal(err)
						}
						fmt.Fprintf(&b, "%s %d archives\n%s\n", sn.Dir(), len(list), js)
					}
				}
			}
			children, err := s.ListNamespaces(ns)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range children {
				walk(append(append(NS{}, ns...), c))
			}
		}
		walk(nil)
		return b.String()
	}
	want, got := tree(local), tree(remote)
	if want != got || !strings.Contains(want, "ns/dev/ct/200") || !strings.Contains(want, "group notes") {
		t.Fatalf("the bucket store differs:\n--- local\n%s\n--- bucket\n%s", want, got)
	}
	checkContent(t, remote, d)

	// A stat and a read of the same object give the same identity.
	_, rst, err := remote.Manifest(d.sn)
	if err != nil {
		t.Fatal(err)
	}
	sst, err := remote.ManifestStamp(d.sn)
	if err != nil || sst.ID() != rst.ID() || sst.Dev != s3Dev || sst.Mode != 0o644 {
		t.Errorf("manifest stamp from the listing %+v (%v), from the read %+v", sst, err, rst)
	}
	dst, err := remote.StatSnapshotDir(d.sn)
	if err != nil || !dst.IsDir() || dst.Nlink != 2 {
		t.Errorf("snapshot directory stamp %+v, %v", dst, err)
	}
	if dst.Mtime.Before(rst.Mtime) {
		t.Errorf("snapshot directory time %v, before its manifest's %v: want its newest object's", dst.Mtime, rst.Mtime)
	}
	if tst, err := remote.StatType(nil, "vm"); err != nil || tst.Mtime.Unix() != 0 || tst.Nlink != 3 {
		t.Errorf("vm/ (only directories in it): %+v, %v; want the epoch and 3 links", tst, err)
	}
	if _, err := remote.StatGroup(Group{Type: "vm", ID: "999"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing group: %v, want ErrNotFound", err)
	}
}

// TestS3BackendChunkCopies checks that a chunk read from the bucket store
// lands in a buffer of the store's pool, never in the bucket cache's copy
// (which the pool would otherwise recycle and overwrite).
func TestS3BackendChunkCopies(t *testing.T) {
	_, remote, d := bucketStore(t)
	a, err := remote.OpenArchive(d.sn, "drive-scsi0.img")
	if err != nil {
		t.Fatal(err)
	}
	digest, _, _, ok := a.chunkRange(0)
	if !ok {
		t.Fatal("no chunk 0")
	}
	shared, err := remote.Bucket().ReadChunk(context.Background(), digest, maxChunkFile)
	if err != nil {
		t.Fatal(err)
	}
	keep := append([]byte(nil), shared...)
	raw, err := remote.back.readChunk(digest, maxChunkFile, remote.arch.pool)
	if err != nil {
		t.Fatal(err)
	}
	if &raw[0] == &shared[0] {
		t.Fatal("readChunk returned the bucket cache's bytes")
	}
	for i := range raw {
		raw[i] = 0xff // what a recycled buffer's next user does
	}
	remote.arch.pool.Put(raw)
	again, err := remote.Bucket().ReadChunk(context.Background(), digest, maxChunkFile)
	if err != nil || string(again) != string(keep) {
		t.Fatalf("the bucket's cached chunk changed after the pool buffer was reused (%v)", err)
	}
}

// TestS3BackendRefusesChanges checks that every change to a bucket store
// fails with ErrReadOnly saying that changes go through PBS.
func TestS3BackendRefusesChanges(t *testing.T) {
	_, remote, d := bucketStore(t)
	ctx := context.Background()
	m, _, err := remote.Manifest(d.sn)
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"SetNotes":        remote.SetNotes(ctx, d.sn, "x"),
		"SetGroupNotes":   remote.SetGroupNotes(ctx, d.sn.Group, "x"),
		"RemoveSnapshot":  remote.RemoveSnapshot(ctx, d.sn),
		"RemoveGroup":     remote.RemoveGroup(d.sn.Group),
		"CreateGroup":     remote.CreateGroup(Group{Type: "vm", ID: "500"}, "root@pam"),
		"WriteSnapshot":   remote.WriteSnapshot(snap(nil, "vm", "100", "2030-01-01T00:00:00Z"), m, nil),
		"MakeSnapshotDir": remote.MakeSnapshotDir(snap(nil, "vm", "100", "2030-01-01T00:00:00Z")),
		"CheckWrite":      remote.CheckWrite(),
		"UpdateManifest":  remote.UpdateManifest(ctx, d.sn, func(*manifest.Unprotected) error { return nil }),
	} {
		if !errors.Is(err, ErrReadOnly) || !strings.Contains(fmt.Sprint(err), "changes go through PBS") {
			t.Errorf("%s: %v, want ErrReadOnly saying that changes go through PBS", name, err)
		}
	}
	if _, err := remote.InsertChunk([]byte("x"), nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("InsertChunk: %v, want ErrReadOnly", err)
	}
	if n, err := remote.CleanupTemps(ctx, 0); n != 0 || err != nil {
		t.Errorf("CleanupTemps: %d, %v", n, err)
	}
	if why := remote.ReadOnlyReason(); !errors.Is(why, ErrReadOnly) {
		t.Errorf("ReadOnlyReason: %v", why)
	}
	if notes, _, err := remote.GroupNotes(d.sn.Group); err != nil || notes != "group notes\n" {
		t.Errorf("group notes after the refused changes: %q, %v", notes, err)
	}
}

// TestS3ErrorKinds checks how bucket errors map to the datastore's kinds:
// a timeout is an I/O error (EIO), not an interrupted request, although
// its cause is a context deadline; a missing object is ErrNotFound and
// fs.ErrNotExist; RemoteFailure gives the request's kind.
func TestS3ErrorKinds(t *testing.T) {
	b := &s3Backend{}
	timeout := b.kindOf(&s3store.Error{Op: "read", Key: "k", Kind: s3store.ErrTimeout, Err: context.DeadlineExceeded})
	if k := classify(timeout); k != ErrIO {
		t.Errorf("timeout: kind %v, want ErrIO", k)
	}
	if k := RemoteFailure(wrap("read", "x", nil, timeout)); k != s3store.ErrTimeout {
		t.Errorf("RemoteFailure: %v", k)
	}
	missing := b.kindOf(&s3store.Error{Op: "read", Key: "k", Kind: s3store.ErrNotFound})
	if k := classify(missing); k != ErrNotFound || !errors.Is(missing, fs.ErrNotExist) {
		t.Errorf("missing object: kind %v, ErrNotExist %v", k, errors.Is(missing, fs.ErrNotExist))
	}
	if RemoteFailure(wrap("read", "x", nil, missing)) != s3store.ErrNotFound {
		t.Error("RemoteFailure of a missing object")
	}
	big := b.kindOf(&s3store.Error{Op: "read", Key: "k", Kind: s3store.ErrTooLarge})
	if k := classify(big); k != ErrCorrupt {
		t.Errorf("object too large: kind %v, want ErrCorrupt", k)
	}
	if RemoteFailure(wrap("read", "x", nil, errors.New("local"))) != nil {
		t.Error("RemoteFailure of a local error")
	}
}
