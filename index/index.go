package index

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// HeaderSize is the size of both index headers; entries start at this offset.
const HeaderSize = 4096

// Entry sizes in bytes.
const (
	FixedEntrySize   = 32 // one SHA-256 digest
	DynamicEntrySize = 40 // u64 LE end offset + SHA-256 digest
)

// Header field offsets shared by both formats.
const (
	offMagic     = 0
	offUUID      = 8
	offCtime     = 24
	offCsum      = 32
	offSize      = 64 // fixed only
	offChunkSize = 72 // fixed only
)

// ErrCorrupt is the base error for every malformed index file.
var ErrCorrupt = errors.New("corrupt index file")

// Magic numbers: SHA-256 of the format name, first 8 bytes.
var (
	fixedMagic   = [8]byte{47, 127, 65, 237, 145, 253, 15, 205} // "Proxmox Backup fixed sized chunk index v1.0"
	dynamicMagic = [8]byte{28, 145, 78, 165, 25, 186, 179, 205} // "Proxmox Backup dynamic sized chunk index v1.0"
)

// FixedMagic returns the 8-byte magic number of .fidx files.
func FixedMagic() [8]byte { return fixedMagic }

// DynamicMagic returns the 8-byte magic number of .didx files.
func DynamicMagic() [8]byte { return dynamicMagic }

// corrupt builds an error that names the index kind and the problem and
// satisfies errors.Is(err, ErrCorrupt).
func corrupt(kind, format string, args ...any) error {
	return fmt.Errorf("%s index: %w: %s", kind, ErrCorrupt, fmt.Sprintf(format, args...))
}

// checkHeader performs the checks common to both formats: minimum size and magic.
func checkHeader(kind string, raw []byte, magic *[8]byte) error {
	if len(raw) < HeaderSize {
		return corrupt(kind, "index too small (%d < %d bytes)", len(raw), HeaderSize)
	}
	if [8]byte(raw[offMagic:offMagic+8]) != *magic {
		return corrupt(kind, "got unknown magic number % x", raw[offMagic:offMagic+8])
	}
	return nil
}

// ChunkPath returns the path of a chunk file relative to the datastore root:
// ".chunks/<first 2 digest bytes as 4 hex>/<64 hex digest>".
func ChunkPath(digest [32]byte) string {
	const prefix = ".chunks/"
	var buf [len(prefix) + 4 + 1 + 64]byte
	n := copy(buf[:], prefix)
	hex.Encode(buf[n:n+4], digest[:2])
	buf[n+4] = '/'
	hex.Encode(buf[n+5:], digest[:])
	return string(buf[:])
}
