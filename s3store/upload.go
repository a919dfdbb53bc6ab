package s3store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
)

// The writer side: PBS writes the bucket, pbsfs only reads it. These exist
// for tests and the demo, which need a bucket laid out as PBS 4 lays it out.

// CreateBucket creates the bucket if it does not exist.
func (b *Bucket) CreateBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	ok, err := b.client.BucketExists(ctx, b.loc.Bucket)
	if err != nil {
		return wrapErr("create bucket", b.loc.Bucket, err)
	}
	if ok {
		return nil
	}
	return wrapErr("create bucket", b.loc.Bucket, b.client.MakeBucket(ctx, b.loc.Bucket, minio.MakeBucketOptions{}))
}

// Put stores data at key (relative to the store prefix, e.g.
// ".cnt/vm/100/owner") and drops what the bucket's caches hold for it.
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	full := b.key(key)
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	_, err := b.client.PutObject(ctx, b.loc.Bucket, full, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	b.mem.remove(full)
	return wrapErr("put", full, err)
}

// Remove deletes the object at key (relative to the store prefix).
func (b *Bucket) Remove(ctx context.Context, key string) error {
	full := b.key(key)
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	b.mem.remove(full)
	return wrapErr("remove", full, b.client.RemoveObject(ctx, b.loc.Bucket, full, minio.RemoveObjectOptions{}))
}

// UploadStats counts what Upload wrote.
type UploadStats struct {
	Metadata, Namespaces, Chunks int
	Bytes                        int64
}

// Upload lays the local datastore at dir out in the bucket as PBS 4 does
// (pbs-format.md §10.4.1): every metadata file of the vm/ct/host/ns trees
// under .cnt/, a .namespace marker per namespace, every chunk under
// .chunks/<4 hex>/<digest>, and the .in-use marker naming host. Local-only
// files (.lock, .gc-status, lock and temporary files) stay behind, as do
// empty chunk files (an S3 cache's evicted-chunk markers).
func Upload(ctx context.Context, b *Bucket, dir, host string) (UploadStats, error) {
	var st UploadStats
	inUse, _ := json.Marshal(map[string]string{"hostname": host})
	if err := b.Put(ctx, ".in-use", inUse); err != nil {
		return st, err
	}
	// The walks decide what to upload; uploadConcurrency PUTs run at once
	// (a store of 10,000 snapshots is some 10,000 small objects).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	put := func(key string, data []byte) {
		g.Go(func() error { return b.Put(gctx, key, data) })
	}
	walkErr := func() error {
		for _, top := range []string{"vm", "ct", "host", "ns"} {
			root := filepath.Join(dir, top)
			err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) && p == root {
						return nil
					}
					return err
				}
				if gctx.Err() != nil {
					return gctx.Err() // a PUT failed: stop walking
				}
				rel, _ := filepath.Rel(dir, p)
				rel = filepath.ToSlash(rel)
				if e.IsDir() {
					if isNamespaceDir(rel) {
						st.Namespaces++
						put(".cnt/"+rel+"/.namespace", nil)
					}
					return nil
				}
				if !e.Type().IsRegular() || !isMetadataFile(e.Name()) {
					return nil
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				st.Metadata++
				st.Bytes += int64(len(data))
				put(".cnt/"+rel, data)
				return nil
			})
			if err != nil {
				return fmt.Errorf("upload %s: %w", root, err)
			}
		}
		chunks := filepath.Join(dir, ".chunks")
		err := filepath.WalkDir(chunks, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == chunks {
					return nil
				}
				return err
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			if e.IsDir() || !e.Type().IsRegular() {
				return nil
			}
			name := e.Name()
			if h, herr := hex.DecodeString(name); herr != nil || len(h) != 32 || filepath.Base(filepath.Dir(p)) != name[:4] {
				return nil // .bad, .using and anything else
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(data) == 0 {
				return nil
			}
			st.Chunks++
			st.Bytes += int64(len(data))
			put(".chunks/"+name[:4]+"/"+name, data)
			return nil
		})
		if err != nil {
			return fmt.Errorf("upload %s: %w", chunks, err)
		}
		return nil
	}()
	// A PUT's error is the cause; the walk's context error only follows it.
	if err := g.Wait(); err != nil {
		return st, err
	}
	return st, walkErr
}

// uploadConcurrency is how many PUTs Upload runs at once.
const uploadConcurrency = 8

// isNamespaceDir reports whether rel is a namespace directory:
// ns/<a>[/ns/<b>…].
func isNamespaceDir(rel string) bool {
	parts := strings.Split(rel, "/")
	if len(parts)%2 != 0 {
		return false
	}
	for i := 0; i < len(parts); i += 2 {
		if parts[i] != "ns" {
			return false
		}
	}
	return true
}

// isMetadataFile reports whether a file of a group or snapshot directory
// is one PBS keeps in the bucket.
func isMetadataFile(name string) bool {
	switch name {
	case "owner", "notes", ".protected":
		return true
	}
	if strings.HasPrefix(name, ".") {
		return false // locks, temporary files
	}
	switch path.Ext(name) {
	case ".blob", ".fidx", ".didx":
		return true
	}
	return false
}
