// Package index reads and writes the two Proxmox Backup Server index formats:
// fixed-size chunk indexes (.fidx, used for block-device images) and
// dynamic-size chunk indexes (.didx, used for pxar archives and other streams).
//
// Both formats start with a 4096-byte little-endian header (magic, uuid, ctime,
// index checksum, and for .fidx the image and chunk size) followed by a packed
// array of entries: 32-byte SHA-256 chunk digests for .fidx, and (end offset,
// digest) pairs of 40 bytes for .didx. See docs/pbs-format.md §3.
//
// ParseFixed and ParseDynamic apply the same structural checks as PBS's readers
// (plus monotonic end offsets for .didx); every error caused by malformed input
// satisfies errors.Is(err, ErrCorrupt). Parsing copies the entries into one
// slice and never retains the input buffer. The package knows nothing about
// directories, chunk contents or locking; ChunkPath only names the chunk file
// relative to the datastore root.
package index
