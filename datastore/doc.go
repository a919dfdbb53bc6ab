// Package datastore reads and safely modifies a Proxmox Backup Server datastore
// directory exactly as PBS itself does, without knowing anything about FUSE.
//
// It lists namespaces, backup types, groups and snapshots one directory level at
// a time (one readdir per level, names validated with PBS's regular
// expressions), classifies snapshots (finished, unfinished, corrupt, protected),
// reads manifests through a small LRU cache keyed by the blob file's identity,
// and performs the three kinds of change pbsfs allows:
//
//   - UpdateManifest: PBS's update_manifest — manifest lock (5 s) → load with
//     CRC check → change the unprotected section only → encode → temp file in
//     the snapshot directory → fsync → rename → fsync directory, keeping the
//     original file's owner, group and mode.
//   - SetGroupNotes: the group notes file, replaced atomically (group lock in
//     the run scheme, as PBS 4.0.19+ does).
//   - RemoveSnapshot / RemoveGroup: PBS's destroy — snapshot lock
//     (non-blocking) → manifest lock → refuse if .protected → remove the
//     directory → drop the lock files → (run scheme) remove an emptied group.
//
// Archives (ListArchives, OpenArchive) are read-only: blobs decoded whole,
// fixed and dynamic indexes read chunk by chunk through Archive.ReadAt.
// Every chunk is verified (CRC, decryption tag, digest of the plain data)
// before a byte of it is returned; a missing or damaged one fails the read
// with ErrCorrupt naming the chunk file. Decoded chunks sit in an LRU bounded
// by bytes; a sequential reader gets the next chunks decoded ahead, in
// parallel (two locally, eight from a bucket). The memory of chunks the cache drops is reused for the next
// loads (a small pool): a chunk is reference-counted, and its memory goes
// back only once the cache and every reader copying from it have let go.
//
// Every path below the datastore is opened with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) relative to a descriptor of the datastore root, so a
// symlink planted inside the store is never followed and no name can resolve
// outside it.
//
// Reads go through a backend (backend.go): the directory, or — OpenS3,
// s3backend.go — the S3 bucket of a PBS 4 datastore with an S3 backend,
// read through package s3store. The same checks apply to both (every chunk
// verified, manifests and indexes checked); a bucket store is always
// read-only (changes go through PBS), and what exists only for a local
// directory (locks, datastore.cfg, maintenance mode, active operations,
// temp-file cleanup) is off for it.
//
// Beside PBS (Options.PBS, neighbour.go): every change is gated and
// registered as PBS's lookup_datastore does (config lock, datastore.cfg,
// maintenance mode, removable mount, S3 backend, active operations), and
// the root descriptor is held only while the store is in use, with a Read
// registered for that time. See pbs-format.md §10.
//
// Errors carry one of the sentinel kinds (ErrNotFound, ErrInUse, ...) for
// errors.Is, plus the operation, the file and the cause.
package datastore
