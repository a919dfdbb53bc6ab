package manifest

import "errors"

// kindError is a sentinel error that is also an instance of a broader
// sentinel (its parent), so that errors.Is(ErrWrongMagic, ErrCorrupt) holds
// while ErrWrongMagic keeps its own message.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.parent }

// Sentinel errors. Every error caused by malformed stored data satisfies
// errors.Is(err, ErrCorrupt); errors caused by bad arguments satisfy
// errors.Is(err, ErrInvalid).
var (
	// ErrCorrupt is the base of every error caused by malformed input data.
	ErrCorrupt = errors.New("corrupt data")
	// ErrWrongMagic: the first 8 bytes are not one of the four DataBlob
	// magics (this includes the removed chunk and authenticated-blob magics).
	ErrWrongMagic error = &kindError{"unable to parse raw blob - wrong magic", ErrCorrupt}
	// ErrBadCRC: the stored CRC-32 does not match the bytes after the header.
	ErrBadCRC error = &kindError{"data blob has wrong CRC checksum", ErrCorrupt}
	// ErrTruncated: the blob is shorter than its header.
	ErrTruncated error = &kindError{"blob too small", ErrCorrupt}
	// ErrBadManifest: the manifest JSON is malformed or violates the schema.
	// (Addition to the contract; Is ErrCorrupt.)
	ErrBadManifest error = &kindError{"invalid manifest", ErrCorrupt}

	// ErrEncrypted: the payload is encrypted and no key handling is
	// available. Not corruption.
	ErrEncrypted = errors.New("unable to decrypt blob - missing CryptConfig")
	// ErrTooLarge: encode input larger than MaxBlobSize, or decoded output
	// that would exceed it.
	ErrTooLarge = errors.New("data blob too large")

	// ErrInvalid is the base of errors caused by invalid arguments (not by
	// stored data). (Addition to the contract.)
	ErrInvalid = errors.New("invalid argument")
	// ErrInvalidNotes: notes that are not valid UTF-8. Is ErrInvalid, not
	// ErrCorrupt.
	ErrInvalidNotes error = &kindError{"notes are not valid UTF-8", ErrInvalid}

	// ErrBadSignature: CheckSignature found a signature that does not match,
	// or a key fingerprint that does not match the given key. Not
	// corruption: the data may be intact and the key wrong. (Addition.)
	ErrBadSignature = errors.New("manifest signature mismatch")
	// ErrSignedChanged: UpdateBlob found the signed part or the signature
	// different after the update. This indicates a bug, never bad input.
	// (Addition.)
	ErrSignedChanged = errors.New("signed part of manifest changed during update")
	// ErrNoMemory is for Buffers whose memory budget is spent: a decode
	// whose Get fails with it did not decode anything. Not corruption: the
	// same blob may decode once other decodes are done. (Addition.)
	ErrNoMemory = errors.New("decode memory budget exhausted")
)
