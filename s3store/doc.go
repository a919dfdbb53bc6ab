// Package s3store reads a Proxmox Backup Server 4 datastore straight from
// its S3 bucket (pbs-format.md §10.4), knowing nothing of FUSE or of the
// datastore's formats: it deals in object keys below the store's prefix.
//
// Layout: every key is <store>/<key>. Metadata files live under
// <store>/.cnt/<relpath> (relpath as in a local datastore: [ns/<a>/…]<type>/
// <id>/<time>/<file>), namespaces carry an empty .cnt/<ns path>/.namespace
// marker, chunks are <store>/.chunks/<4 hex>/<64 hex>, and <store>/.in-use
// names the PBS host operating the store.
//
// A Bucket answers the questions a read-only datastore reader asks of a
// directory tree:
//
//   - ReadDir: one directory level, from delimiter listings (one request per
//     page of 1000 names), never a listing of the whole bucket;
//   - Stat and ReadFile: a metadata object with its identity stamp (ETag,
//     Last-Modified, size), so a reader can tell when PBS replaced it;
//   - ReadChunk: the raw DataBlob of a chunk (the caller verifies it).
//
// Every request runs under a timeout and ends in an error (ErrTimeout,
// ErrUnreachable, ...) rather than hanging; transient failures are retried
// with exponential backoff by the client library. Answers are cached: chunks
// (immutable, content-addressed) and metadata objects in a memory LRU bounded
// by bytes, chunks optionally also in a cache directory bounded by size;
// metadata objects and listings are trusted for the recheck interval and then
// revalidated by ETag, so what PBS changes in the bucket shows after it.
//
// Endpoints are configured as PBS configures them (s3.cfg's s3-endpoint
// sections: URL, region, path-style or virtual-host addressing, a pinned
// certificate fingerprint). Credentials come from the environment, a file or
// s3.cfg, never from the command line; they are held in a Secret that prints
// as "[redacted]" and appear in no error or log line.
//
// Upload is the writer used by tests and the demo: it lays a local datastore
// out in a bucket as PBS 4 does.
//
// The S3 client is github.com/minio/minio-go/v7: one module focused on
// S3-compatible servers (AWS, Ceph RGW, MinIO, SeaweedFS), with path-style and
// virtual-host addressing, a pluggable http.Transport (for the pinned
// certificate) and built-in retries with jittered exponential backoff.
package s3store
