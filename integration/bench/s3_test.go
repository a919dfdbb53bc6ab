package main

import (
	"context"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/lock"
	"pbsfs/s3store"
	"pbsfs/s3store/s3test"
)

func TestParseS3Flags(t *testing.T) {
	cfg, err := parseFlags([]string{"--only", "s3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.only["s3"] || cfg.s3Snapshots != 10000 {
		t.Errorf("--only s3: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--quick", "--only", "s3", "--s3-image-chunks", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: cfg}
	if cfg.s3Snapshots != 1000 || b.s3ImageChunks() != 3 {
		t.Errorf("--quick --s3-image-chunks 3: %d snapshots, %d chunks", cfg.s3Snapshots, b.s3ImageChunks())
	}
}

// TestS3InProcessBaseline: the in-process side of the image benchmark
// fetches every chunk of the image once from a real bucket and verifies
// it: one request per chunk, and a missing chunk is an error, not a
// faster baseline.
func TestS3InProcessBaseline(t *testing.T) {
	var srv s3test.Server
	srv.Need(t)
	t.Cleanup(srv.Close)
	dir := filepath.Join(t.TempDir(), "store")
	if err := datastore.Create(dir, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := datastore.Open(dir, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: "t", UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	fx, _, err := demo.WriteImageSnapshot(st, "100", 3)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := &s3Data{srv: &srv}
	loc := s3store.Location{Bucket: s3Bucket, Store: s3ImageStore}
	w, err := s3store.New(d.endpoint(), loc, s3store.Options{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if err := w.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s3store.Upload(ctx, w, dir, "t"); err != nil {
		t.Fatal(err)
	}
	bk, err := s3store.New(d.endpoint(), loc, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	if err := fetchDecode(ctx, bk, fx); err != nil {
		t.Fatal(err)
	}
	if n := bk.Requests(); n != int64(len(fx.Digests)) {
		t.Errorf("%d requests for %d chunks", n, len(fx.Digests))
	}
	h := hex.EncodeToString(fx.Digests[1][:])
	if err := w.Remove(ctx, ".chunks/"+h[:4]+"/"+h); err != nil {
		t.Fatal(err)
	}
	fresh, err := s3store.New(d.endpoint(), loc, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fetchDecode(ctx, fresh, fx); err == nil {
		t.Error("a missing chunk went unnoticed")
	}
}
