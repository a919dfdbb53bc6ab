package pxar

import "sync/atomic"

// Kind is the type of an archived entry.
type Kind uint8

// Entry kinds.
const (
	KindDir Kind = iota + 1
	KindFile
	KindSymlink
	KindBlockDev
	KindCharDev
	KindFIFO
	KindSocket
)

func (k Kind) String() string {
	switch k {
	case KindDir:
		return "dir"
	case KindFile:
		return "file"
	case KindSymlink:
		return "symlink"
	case KindBlockDev:
		return "blockdev"
	case KindCharDev:
		return "chardev"
	case KindFIFO:
		return "fifo"
	case KindSocket:
		return "socket"
	}
	return "invalid"
}

// Xattr is one extended attribute as archived (an XATTR item).
type Xattr struct {
	Name, Value string
}

// ACLEntry is a named user or group entry of a POSIX ACL: a uid or gid and
// its permission bits (ACLRead|ACLWrite|ACLExecute).
type ACLEntry struct {
	ID   uint64
	Perm uint64
}

// ACLDefault holds the base entries of a directory's default ACL (the
// ACL_DEFAULT item). Mask is ACLNoMask when the default ACL has none.
type ACLDefault struct {
	UserObj, GroupObj, Other, Mask uint64
}

// ACL is the POSIX ACL of an entry as archived (ACL_* items, pxar-format.md
// §5.9). The access ACL's USER_OBJ and OTHER, and its MASK when GroupObj is
// set, live in the mode's permission bits.
type ACL struct {
	Users  []ACLEntry // ACL_USER
	Groups []ACLEntry // ACL_GROUP
	// GroupObj is the GROUP_OBJ permission when the access ACL has a mask
	// (the mode's group bits then hold the mask); nil otherwise.
	GroupObj      *uint64
	Default       *ACLDefault // ACL_DEFAULT, nil if absent
	DefaultUsers  []ACLEntry  // ACL_DEFAULT_USER
	DefaultGroups []ACLEntry  // ACL_DEFAULT_GROUP
}

// Entry is one decoded archive entry. Entries are immutable once returned
// and may be shared between goroutines.
type Entry struct {
	Name string // raw name bytes (may be non-UTF-8); "" for the root
	// ID is stable and unique within the archive and never 0: the offset of
	// the entry's ENTRY header in the metadata stream, plus one. A hardlink
	// has its target's ID, so both share an inode.
	ID    uint64
	Kind  Kind
	Mode  uint64 // full st_mode incl. type and setuid/setgid/sticky
	Flags uint64 // chattr/FAT attribute flags as archived

	UID, GID  uint32
	MtimeSec  int64
	MtimeNsec uint32

	Size       uint64 // regular file: content size; symlink: len(LinkTarget)
	LinkTarget string // symlink target
	RdevMajor  uint64
	RdevMinor  uint64

	Xattrs []Xattr
	ACL    ACL
	FCaps  []byte  // raw security.capability value, nil if none
	ProjID *uint64 // quota project id, nil if none

	// Hardlink is true for an entry reached through a HARDLINK item: its
	// metadata and content are the target's. HardlinkPath is the target
	// path the archive records (informational, root-relative).
	Hardlink     bool
	HardlinkPath string

	entryStart uint64 // ENTRY header offset in the metadata stream
	linkOffset uint64 // hardlinks: the HARDLINK item's offset field

	// directories
	bodyStart uint64 // first child FILENAME (or the GOODBYE) offset
	end       uint64 // end of the directory's GOODBYE item
	tailRef   uint64 // what the goodbye tail's offset counts from (ENTRY; 0 for the root)

	// regular files
	data *payloadLoc
}

// payloadLoc locates a regular file's bytes. It is shared between an entry
// and the hardlinks to it.
type payloadLoc struct {
	split   bool   // in the payload stream (v2), else the metadata stream
	ref     uint64 // v2: offset of the PAYLOAD header the PAYLOAD_REF names
	off     uint64 // offset of the first content byte
	checked atomic.Bool
}

// IsDir reports whether e is a directory.
func (e *Entry) IsDir() bool { return e.Kind == KindDir }
