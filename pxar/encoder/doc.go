// Package encoder writes pxar archives (../../shared/docs/pxar-format.md):
// v1 unified archives (WriteV1: a NAME.pxar stream), v2 split archives
// (WriteSplit: a NAME.mpxar metadata stream and a NAME.ppxar payload
// stream) and the catalog.pcat1 stream (WriteCatalog). Trees come from
// memory (Node) or from a real directory (FromDir).
//
// It is for pbsfs's tests, benchmarks and demo store, not a backup client:
// no exclusions, no change detection, no chunking (callers cut the streams).
//
// What is covered, byte for byte as the reference encoders write it:
//   - every entry kind: directories, regular files, symlinks, hardlinks
//     (to earlier regular files; offset and root-relative target path),
//     block and character devices, FIFOs, sockets;
//   - ENTRY with mode (incl. setuid/setgid/sticky), flags, uid, gid and
//     mtime with nanoseconds (negative times floor-based);
//   - attribute items in the crate's order: XATTR, ACL_USER, ACL_GROUP,
//     ACL_GROUP_OBJ, ACL_DEFAULT, ACL_DEFAULT_USER, ACL_DEFAULT_GROUP,
//     FCAPS, QUOTA_PROJID;
//   - goodbye tables (filename hash, BST order, tail pointing at the
//     directory's ENTRY, or at offset 0 for the root);
//   - v2: FORMAT_VERSION 2, optional PRELUDE, PAYLOAD_REF, payload start and
//     tail markers, the goodbye size quirk of freshly written files (§10.3),
//     and — through SplitOptions.Reused — files re-used with padding as the
//     client's metadata mode writes them;
//   - the catalog: one block per directory, children before parents, one
//     root-block entry per archive.
//
// The tests compare the output with the fixtures: the pxar crate's v1 and
// v2 archives of a tree with every entry kind, PBS's catalog of it, and the
// real client's split archives of its data and metadata (re-use) runs.
//
// Offsets are counted while writing (no seeking); file contents given by
// Node.Open are streamed, so archives of any size take memory proportional
// to the largest directory only.
package encoder
