// Package demo writes demonstration and benchmark datastores with the
// project's own writers (datastore.Create, Store.CreateGroup,
// Store.WriteSnapshot, Store.InsertChunk, datastore.BuildBlob, manifest.New
// and the index encoders).
//
// Sample builds a small but realistic store: the root namespace plus "prod"
// and "prod/db", vm, ct and host groups with owners and group notes, several
// snapshots per group whose manifests carry notes (multi-line and non-ASCII),
// chunk_upload_stats and verify_state like PBS writes them, real .fidx/.didx
// index files whose chunks exist in .chunks, one protected snapshot, signed
// manifests with encrypted files (fixed demo key, key-fingerprint in the
// unprotected section) and one unfinished snapshot (a directory without
// index.json.blob).
//
// Container and host snapshots hold real pxar archives (package
// pxar/encoder) of a small root file system with every entry kind, xattrs,
// file capabilities, access and default ACLs and a log file spanning
// several chunks: v1 root.pxar.didx with catalog.pcat1.didx, or split
// root.mpxar.didx + root.ppxar.didx (SampleSplit; one encrypted,
// SampleEncryptedArchive). Streams are cut into content-defined chunks, so
// consecutive snapshots share most of them. SampleArchiveOf returns the
// archived tree of a snapshot, for tests that compare a mount with it;
// WriteFileArchive stores any tree (e.g. encoder.FromDir of a real
// directory) as such an archive, streaming.
//
// Large writes manifests only (no index files, no chunks), with realistic
// file lists and sizes, in parallel on all available cores; it is meant for
// benchmarks with tens of thousands of snapshots.
//
// Both functions are deterministic: the same call produces the same tree,
// apart from file times and the random IVs of encrypted blobs and chunks.
// Encryption, chunk digests and the key fingerprint come from
// manifest.CryptConfig; the package's tests check them with an independent
// decoder.
package demo
