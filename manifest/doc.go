// Package manifest implements the two Proxmox Backup Server (PBS) file formats
// that pbsfs reads and rewrites: the DataBlob container (used for every .blob
// file and every chunk) and the backup manifest index.json.blob, which is a
// DataBlob holding a JSON document.
//
// The package knows no directories and takes no locks; callers (package
// datastore) hold the manifest lock around [UpdateBlob].
//
// # DataBlob
//
// A blob is an 8-byte magic, a CRC-32 (IEEE, little-endian) over every byte
// after the header, optionally a 16-byte IV and 16-byte GCM tag (encrypted
// magics), then the payload: raw data or one or more zstd frames. [ParseBlob]
// checks length, magic and CRC; [Blob.Decode] decompresses; encrypted blobs
// can be parsed but not decoded (no key handling here, [ErrEncrypted]).
// [EncodeBlob] writes the unencrypted forms with zstd level 1, keeping the
// compressed form only when it is not larger than the input, like PBS 3.2+.
//
// # Manifest
//
// [Manifest] models BackupManifest. Its signed fields (backup-type, backup-id,
// backup-time, files) are unexported and have getters only; the one mutable
// part is the [Unprotected] section. [Manifest.MarshalPretty] reproduces
// serde_json's to_string_pretty output of a serde_json::Value byte for byte
// (sorted keys, two-space indent, serde's string escaping). Unknown keys are
// kept at the top level, in file entries and inside unprotected, and written
// back sorted with the rest; they are not covered by the signature (PBS does
// not even see them).
//
// Parsing is strict and total: every malformed input yields an error that
// satisfies errors.Is(err, [ErrCorrupt]) and names what is wrong; no input
// makes the package panic. Policies that go beyond serde_json:
//
//   - Duplicate object keys are rejected anywhere in the document. serde
//     rejects duplicated known fields and silently keeps the last value
//     elsewhere; for a signed document an ambiguous key is treated as
//     corruption rather than guessed at.
//   - Strings must be valid UTF-8 and \u escapes must not be lone
//     surrogates (as serde_json::from_slice); control characters must be
//     escaped; nesting is limited to 127 levels (what serde_json's limit admits).
//   - `unprotected: null` is read as {} (PBS turns Null into an object on the
//     first edit); any other non-object unprotected value is rejected.
//   - csum is accepted in either hex case and written lowercase, exactly as
//     PBS's hex::serde round trip does; the signature covers the lowercase
//     form.
//   - Numbers inside unknown values are re-emitted with their literal input
//     text. serde_json would normalise non-integers and integers outside the
//     64-bit range to its f64 form (1E2 -> 100.0); PBS itself only ever
//     writes 64-bit integers there, so real manifests are unaffected.
package manifest
