// Package pxar reads Proxmox's pxar file archives — v1 unified archives and
// v2 split archives (a metadata stream plus a payload stream) — over
// io.ReaderAt, with random access through the goodbye tables
// (../shared/docs/pxar-format.md). It knows nothing of datastores, chunks or
// FUSE: callers hand it the reassembled streams.
package pxar
