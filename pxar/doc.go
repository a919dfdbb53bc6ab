// Package pxar reads Proxmox's pxar file archives — v1 unified archives and
// v2 split archives (a metadata stream plus a payload stream) — over
// io.ReaderAt, with random access through the goodbye tables
// (../shared/docs/pxar-format.md). It knows nothing of datastores, chunks or
// FUSE: callers hand it the reassembled streams.
//
// # Design
//
// Lazy decoding. Open reads the header (FORMAT_VERSION, PRELUDE), the root
// ENTRY and the root goodbye tail, nothing else. A directory is addressed
// by the end of its GOODBYE item (§7.2): ReadDir reads that directory's
// goodbye table and decodes each child from the FILENAME the table points
// at, up to the item that ends the child's metadata (PAYLOAD header,
// PAYLOAD_REF, SYMLINK, DEVICE, or the next FILENAME/GOODBYE). File
// contents and subdirectory bodies are never read to list a directory, so
// listing costs reads proportional to the directory, not to the archive.
// Lookup without a cached listing walks the table as the binary search tree
// of §7.1 (reading only the slots on the path, equal hashes in both
// subtrees) and compares the FILENAME. Children are decoded in archive
// order through a cursor that reads 8 KiB windows (recycled through a
// sync.Pool), so neighbouring items share one ReadAt.
//
// Caches. Decoded directories (their goodbye position and, once listed,
// their children sorted by name) live in an LRU of Options.DirCacheSize
// directories (github.com/hashicorp/golang-lru/v2's simplelru), keyed by
// goodbye end, and with Options.DirCacheEntries of at most that many
// children in all (the newest listing is kept whatever its size).
// Memory is therefore bounded by the cache size times the directory size,
// or by the entry bound, independent of the archive size. Archives opened
// with one DirCache (Options.DirCache) share it instead, keyed by an id
// each gets from it, so one bound holds for all of them: a caller keeping
// many archives open pays for one cache, not one per archive.
//
// Scanning ahead. With Options.ScanAhead, ReadDir decodes each
// subdirectory's subtree in stream order right after its entry and caches
// every listing its goodbye table confirms: in a v1 archive, where a
// directory's children are spread over its subtree, a walk then reads the
// stream forward about once instead of once per directory level, and
// skips file payloads by their size (scan.go). Entries are immutable and shared; a
// cached listing also answers Lookup by binary search. A regular file's
// Entry carries its payload location, so ReadAt is one ReadAt of the
// underlying stream; for split archives the PAYLOAD header a PAYLOAD_REF
// names is checked once per entry on first read (an atomic flag), not on
// listing, so listing a split archive never touches the payload stream.
//
// Bounds and validation. Every item header is checked against the type's
// content limit (§2) and against the range it must lie in before anything
// is allocated from its size; tables are sized from the tail, which must
// fit its directory and may list no more children than its body can hold;
// goodbye items are checked as they are read, so a garbage table fails at
// its first item. A child's range must lie inside its parent's body and
// before the parent's goodbye table, a subdirectory's goodbye tail must
// point back at its own ENTRY; ranges thus nest strictly and no crafted
// table can make a cycle. A listing additionally checks that the table is a
// search tree of the children's name hashes (so Lookup and ReadDir agree),
// that each hash is its name's, that children do not overlap and names are
// unique and valid (non-empty, at most 4096 bytes, no '/' or NUL, not "."
// or ".."). Hardlinks resolve by offset to an earlier FILENAME that must
// hold neither a hardlink nor a directory. A v2 regular file's goodbye size
// may include its payload (§10.3), so files are bounded by the parent's
// goodbye table, not by that size. Format errors are *CorruptError (with
// stream and offset) wrapping ErrCorrupt; errors of the underlying
// ReaderAt pass through wrapped, so callers can tell a damaged chunk from
// a malformed archive.
//
// IDs. Entry.ID is the ENTRY header's offset plus one: stable, unique,
// never 0, and a hardlink carries its target's ID.
//
// All methods of Archive are safe for concurrent use.
package pxar
