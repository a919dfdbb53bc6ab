package pxar

import "github.com/dchest/siphash"

// Item type constants (pxar-format.md §3). Each is the SipHash-2-4 of an
// ASCII string under the filename-hash keys; TestTypeConstants recomputes
// them.
const (
	TypeFormatVersion      uint64 = 0x730f6c75df16a40d
	TypeEntry              uint64 = 0xd5956474e588acef
	TypeEntryV1            uint64 = 0x11da850a1c1cceff
	TypePrelude            uint64 = 0xe309d79d9f7b771b
	TypeFilename           uint64 = 0x16701121063917b3
	TypeSymlink            uint64 = 0x27f971e7dbf5dc5f
	TypeDevice             uint64 = 0x9fc9e906586d5ce9
	TypeXattr              uint64 = 0x0dab0229b57dcd03
	TypeACLUser            uint64 = 0x2ce8540a457d55b8
	TypeACLGroup           uint64 = 0x136e3eceb04c03ab
	TypeACLGroupObj        uint64 = 0x10868031e9582876
	TypeACLDefault         uint64 = 0xbbbb13415a6896f5
	TypeACLDefaultUser     uint64 = 0xc89357b40532cd1f
	TypeACLDefaultGroup    uint64 = 0xf90a8a5816038ffe
	TypeFCaps              uint64 = 0x2da9dd9db5f7fb67
	TypeQuotaProjID        uint64 = 0xe07540e82f7d1cbb
	TypeHardlink           uint64 = 0x51269c8422bd7275
	TypePayload            uint64 = 0x28147a1b0b7c1a25
	TypePayloadRef         uint64 = 0x419d3d6bc4ba977e
	TypeGoodbye            uint64 = 0x2fec4fa642d5731d
	GoodbyeTailMarker      uint64 = 0xef5eed5b753e1555
	TypePayloadStartMarker uint64 = 0x834c68c2194a4ed2
	TypePayloadTailMarker  uint64 = 0x6c72b78b984c81b5
)

// Sizes of fixed parts of the format (pxar-format.md §2, §5).
const (
	HeaderSize      = 16 // htype u64 + full_size u64
	StatSize        = 40 // ENTRY content
	StatV1Size      = 32 // ENTRY_V1 content
	GoodbyeItemSize = 24 // hash, offset, size
	PayloadRefSize  = 16 // offset, size
	DeviceSize      = 16 // major, minor
	MaxNameLen      = 4096
	MaxPathLen      = 4096
	MaxXattrLen     = 255 + 64*1024
)

// ACL permission bits and the "no mask" value (pxar-format.md §5.9).
const (
	ACLRead    uint64 = 4
	ACLWrite   uint64 = 2
	ACLExecute uint64 = 1
	ACLNoMask  uint64 = 0xffffffffffffffff
)

// File type bits of Stat.Mode (Linux st_mode).
const (
	ModeTypeMask uint64 = 0o170000
	ModeSocket   uint64 = 0o140000
	ModeSymlink  uint64 = 0o120000
	ModeRegular  uint64 = 0o100000
	ModeBlock    uint64 = 0o060000
	ModeDir      uint64 = 0o040000
	ModeChar     uint64 = 0o020000
	ModeFIFO     uint64 = 0o010000
)

// Hash keys of the filename hash: the first 16 bytes of
// SHA-1("PROXMOX ARCHIVE FORMAT") as two little-endian numbers (§7.3).
const (
	hashKey0 uint64 = 0x83ac3f1cfbb450db
	hashKey1 uint64 = 0xaa4f1b6879369fbd
)

// HashFilename is the filename hash of goodbye tables: SipHash-2-4 over the
// raw name bytes with the format's fixed keys (pxar-format.md §7.3).
func HashFilename(name []byte) uint64 {
	return siphash.Hash(hashKey0, hashKey1, name)
}
