package datastore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/s3store"
)

// A datastore read straight from its PBS 4 S3 bucket (pbs-format.md
// §10.4): the tree and the metadata files under <store>/.cnt/, the chunks
// under <store>/.chunks/, through an s3store.Bucket (which caches, retries
// and bounds every request with a timeout).
//
// Such a store is always read-only: no PBS lock can be taken from another
// host, and what PBS does not know of it would undo (a notes edit) or
// break (a forget behind GC's back). Every change fails with ErrReadOnly
// and errBucketReadOnly as its cause. What exists for a local directory
// only is off: the datastore.cfg section, maintenance mode and active
// operations (the PBS host's, not this one's), locks, the cleanup of temp
// files, and the .using hints of a local S3 cache.

// errBucketReadOnly is the cause of every refused change to a bucket store.
var errBucketReadOnly = errors.New("the datastore is read from its S3 bucket, which pbsfs never changes " +
	"(no PBS lock can be taken from another host): changes go through PBS")

// s3Dev is the device number of every stamp of a bucket store.
const s3Dev = 0x5333 // "S3"

// s3ReadAhead is the chunk read-ahead of a bucket store: a chunk costs a
// round trip there, so more of them are fetched (and decoded) at once.
const s3ReadAhead = 8

// remoteError is a failed request to the bucket with the datastore kind it
// maps to; classify gives that kind first, whatever the cause wraps (a
// timeout's context.DeadlineExceeded is no interrupted request).
// A missing object also is fs.ErrNotExist, as a missing file is to the
// checks written for the local directory.
type remoteError struct {
	kind error
	err  error
}

func (e *remoteError) Error() string { return e.err.Error() }

func (e *remoteError) Unwrap() []error {
	if e.kind == ErrNotFound {
		return []error{e.err, fs.ErrNotExist}
	}
	return []error{e.err}
}

// RemoteFailure returns the object-storage kind (s3store.ErrTimeout,
// ErrUnreachable, ErrAuth, …) when err is a failed request to the bucket a
// store is read from, or nil.
func RemoteFailure(err error) error {
	var r *remoteError
	var se *s3store.Error
	if !errors.As(err, &r) || !errors.As(r.err, &se) {
		return nil
	}
	return se.Kind
}

// s3Backend reads the datastore from its bucket.
type s3Backend struct {
	b        *s3store.Bucket
	uid, gid uint32 // owner shown for everything (the mounting user)
}

// OpenS3 opens the datastore b reads, read-only: every change fails with
// ErrReadOnly, saying that changes go through PBS. Of o, Lock, ReadOnly and
// PBS do not apply (there is no local directory, and no PBS on this host
// governs the bucket). The store closes b when it is closed.
func OpenS3(b *s3store.Bucket, o Options) (*Store, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Archives.CacheBytes == 0 {
		o.Archives.CacheBytes = DefaultBucketChunkCache
	}
	s, err := newStoreState(b.Location().String(), o, logger)
	if err != nil {
		return nil, err
	}
	s.bucket = &s3Backend{b: b, uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	s.back = s.bucket
	s.readOnly = true
	s.roReason = errBucketReadOnly
	s.g = &guard{fd: -1, path: s.path, log: logger} // no descriptor: local-only paths fail, never reach a directory
	return s, nil
}

// refuse is the error of a change to a read-only store.
func (s *Store) refuse(op, path string) error { return wrap(op, path, ErrReadOnly, s.roReason) }

// ReadOnlyReason is why every change is refused when that is not only the
// user's choice (--read-only): for a bucket store, that changes go through
// PBS. Nil otherwise.
func (s *Store) ReadOnlyReason() error {
	if s.roReason == nil {
		return nil
	}
	return s.refuse("change", s.path)
}

// Bucket is the bucket a store opened with OpenS3 reads, or nil.
func (s *Store) Bucket() *s3store.Bucket {
	if s.bucket == nil {
		return nil
	}
	return s.bucket.b
}

func (b *s3Backend) close() { b.b.Close() }

func (b *s3Backend) readAhead() int { return s3ReadAhead }

// ctx is the context of a request: the bucket bounds each with its timeout.
func (b *s3Backend) ctx() context.Context { return context.Background() }

// clean turns a datastore-relative path into the bucket's form ("" for
// the root).
func clean(rel string) string {
	rel = path.Clean("/" + rel)
	return strings.TrimPrefix(rel, "/")
}

// kindOf maps a bucket error to the datastore's kinds: a missing object is
// ErrNotFound (a missing chunk becomes ErrCorrupt in loadChunk, as
// locally), one too large errTooBig (ErrCorrupt, as locally), everything
// else (timeouts, unreachable endpoint, access denied, …) ErrIO.
func (b *s3Backend) kindOf(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, s3store.ErrNotFound):
		return &remoteError{kind: ErrNotFound, err: err}
	case errors.Is(err, s3store.ErrTooLarge):
		return &remoteError{kind: ErrCorrupt, err: fmt.Errorf("%w: %w", err, errTooBig)}
	}
	return &remoteError{kind: ErrIO, err: err}
}

// hash is the inode number of a stamp: FNV-1a of the parts.
func hash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}

// seconds is t as the bucket can report it both in listings (milliseconds)
// and in a GET's Last-Modified header (seconds): the two must give the
// same stamp. No time (a directory holding only directories) is the epoch.
func seconds(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0)
	}
	return time.Unix(t.Unix(), 0)
}

// fileStamp is the stamp of the object at rel: a replaced object (new ETag)
// is a new inode, as a rename into place is locally.
func (b *s3Backend) fileStamp(rel string, info s3store.Info) Stamp {
	t := seconds(info.LastModified)
	return Stamp{
		Dev: s3Dev, Ino: hash(".cnt/"+rel, info.ETag), Size: info.Size, Mode: 0o644,
		UID: b.uid, GID: b.gid, Mtime: t, Ctime: t, Nlink: 1,
	}
}

// dirStamp is the stamp of the directory rel from its own listing: its
// identity changes with any name or object in it (as a directory's mtime
// does locally), its time is that of its newest object, its link count
// that of a local directory with as many subdirectories.
func (b *s3Backend) dirStamp(rel string, ents []s3store.Entry) Stamp {
	parts := make([]string, 0, 1+2*len(ents))
	parts = append(parts, ".cnt/"+rel+"/")
	var newest time.Time
	nlink := uint64(2)
	for _, e := range ents {
		if e.Dir {
			parts = append(parts, e.Name+"/", "")
			nlink++
			continue
		}
		parts = append(parts, e.Name, e.Info.ETag)
		if e.Info.LastModified.After(newest) {
			newest = e.Info.LastModified
		}
	}
	t := seconds(newest)
	return Stamp{
		Dev: s3Dev, Ino: hash(parts...), Mode: os.ModeDir | 0o755,
		UID: b.uid, GID: b.gid, Mtime: t, Ctime: t, Nlink: nlink,
	}
}

func (b *s3Backend) stat(rel string) (Stamp, error) {
	rel = clean(rel)
	if rel != "" {
		e, err := b.b.Stat(b.ctx(), rel)
		if err != nil {
			return Stamp{}, b.kindOf(err)
		}
		if !e.Dir {
			return b.fileStamp(rel, e.Info), nil
		}
	}
	ents, err := b.b.ReadDir(b.ctx(), rel)
	if err != nil {
		return Stamp{}, b.kindOf(err)
	}
	return b.dirStamp(rel, ents), nil
}

func (b *s3Backend) readDir(rel string) ([]dirEntry, error) {
	ents, err := b.b.ReadDir(b.ctx(), clean(rel))
	if err != nil {
		return nil, b.kindOf(err)
	}
	out := make([]dirEntry, len(ents))
	for i, e := range ents {
		out[i] = dirEntry{name: e.Name, isDir: e.Dir}
	}
	return out, nil
}

// readFile copies the object: the bucket's bytes are its cache's, shared
// and never to be changed or recycled.
func (b *s3Backend) readFile(rel string, limit int64, pool *bufPool) ([]byte, Stamp, error) {
	rel = clean(rel)
	data, info, err := b.b.ReadFile(b.ctx(), rel, limit)
	if err != nil {
		return nil, Stamp{}, b.kindOf(err)
	}
	buf, err := copyInto(data, pool)
	if err != nil {
		return nil, Stamp{}, fmt.Errorf("%s: %w", info.Key, err)
	}
	return buf, b.fileStamp(rel, info), nil
}

func (b *s3Backend) exists(rel string) (bool, error) {
	rel = clean(rel)
	if rel == "" {
		return true, nil
	}
	_, err := b.b.Stat(b.ctx(), rel)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, s3store.ErrNotFound):
		return false, nil
	}
	return false, b.kindOf(err)
}

// readChunk fetches the chunk straight into a pool buffer, which loadChunk
// recycles when the chunk is released. The bucket keeps no copy in memory:
// the store's chunk cache holds the decoded chunk.
func (b *s3Backend) readChunk(digest [32]byte, limit int64, pool *bufPool) ([]byte, error) {
	data, err := b.b.ReadChunkInto(b.ctx(), digest, limit, func(n int) ([]byte, error) {
		if pool == nil {
			return make([]byte, n), nil
		}
		buf, err := pool.Get(n)
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	})
	if err != nil {
		return nil, b.kindOf(err)
	}
	return data, nil
}

// badChunk drops the bucket's cached copy of a chunk that failed
// verification, so that a later read fetches it again.
func (b *s3Backend) badChunk(digest [32]byte) { b.b.Forget(digest) }

// copyInto copies data into a buffer from pool (nil: a new one).
func copyInto(data []byte, pool *bufPool) ([]byte, error) {
	if pool == nil {
		return append([]byte(nil), data...), nil
	}
	buf, err := pool.Get(len(data))
	if err != nil {
		return nil, err
	}
	buf = buf[:len(data)]
	copy(buf, data)
	return buf, nil
}

// s3Statfs is what statfs shows for a bucket store: a bucket has no size
// to report, and pbsfs writes nothing to it.
func s3Statfs() unix.Statfs_t {
	return unix.Statfs_t{Bsize: 4096, Frsize: 4096, Namelen: 255}
}
