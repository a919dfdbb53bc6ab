package encoder

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"pbsfs/pxar"
)

// Node is one entry of a tree to encode. Its kind is the file type in Mode
// (pxar.ModeDir, ModeRegular, ModeSymlink, ModeBlock, ModeChar, ModeFIFO,
// ModeSocket), except for hardlinks, which only have Name and HardlinkTo.
//
// Children are encoded in byte order of their names whatever their order
// in the slice (as proxmox-backup-client sorts them); equal names are an
// error.
type Node struct {
	Name      string // file name; empty for the archive root
	Mode      uint64 // st_mode: file type and permission bits incl. setuid/setgid/sticky
	Flags     uint64 // chattr/FAT attribute flags as the client stores them (usually 0)
	UID, GID  uint32
	MtimeSec  int64  // seconds since the epoch, floor-based for negative times
	MtimeNsec uint32 // 0..999 999 999

	Xattrs []Xattr // written in this order (the client keeps listxattr order)
	ACL    ACL
	FCaps  []byte  // raw security.capability value; nil when absent
	ProjID *uint64 // quota project id; nil when absent

	Symlink              string // symlink target
	RdevMajor, RdevMinor uint64 // device numbers

	Children []*Node // directory entries
	// List gives a directory's entries instead of Children when the
	// encoder reaches the directory, for generated trees too large to hold
	// in memory: the entries are dropped once written, so an archive takes
	// memory proportional to its largest directory. Every encoding
	// (WriteV1, WriteSplit, WriteCatalog) calls it once per directory, and
	// it must return the same entries each time. A hardlink below a listed
	// directory may only point to a file listed by the same call (or below
	// it): targets elsewhere are refused as not earlier.
	List func() ([]*Node, error)

	// Contents of a regular file: Data, or (for large files, which are
	// then streamed and never held in memory) Open with the exact Size.
	// With Data, Size must be 0 or len(Data).
	Data []byte
	Size uint64
	Open func() (io.ReadCloser, error)

	// HardlinkTo makes this entry a hardlink to an earlier regular file of
	// the same tree (earlier in archive order); all other fields but Name
	// are ignored.
	HardlinkTo *Node
}

// Xattr is an extended attribute other than POSIX ACLs and file
// capabilities (which have their own items).
type Xattr struct {
	Name  string
	Value []byte
}

// ACLEntry is a named user (ID = uid) or group (ID = gid) entry with
// pxar.ACLRead/ACLWrite/ACLExecute permission bits.
type ACLEntry struct {
	ID   uint64
	Perm uint64
}

// ACLDefault holds the base entries of a directory's default ACL;
// pxar.ACLNoMask marks one as not set.
type ACLDefault struct {
	UserObj, GroupObj, Other, Mask uint64
}

// ACL is a POSIX ACL as pxar stores it (pxar-format.md §5.9): the access
// ACL's named entries (user_obj, other and the mask live in the mode bits),
// its group_obj permissions when the ACL has a mask, and the default ACL of
// a directory. Entries are written in the given order (FromDir sorts them
// by id, as the client does).
type ACL struct {
	Users, Groups []ACLEntry
	GroupObj      *uint64
	Default       *ACLDefault
	DefaultUsers  []ACLEntry
	DefaultGroups []ACLEntry
}

func (n *Node) kind() uint64 { return n.Mode & pxar.ModeTypeMask }

// entries returns a directory's children sorted by name: Children, or what
// List gives.
func (n *Node) entries() ([]*Node, error) {
	children := slices.Clone(n.Children)
	if n.List != nil {
		if len(n.Children) > 0 {
			return nil, errors.New("both Children and List")
		}
		var err error
		if children, err = n.List(); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
	}
	slices.SortFunc(children, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	return children, nil
}

// fileSize is the size of a regular file's contents.
func (n *Node) fileSize() uint64 {
	if n.Open != nil {
		return n.Size
	}
	return uint64(len(n.Data))
}

// Perm returns a pointer to p, for ACL.GroupObj and Node.ProjID.
func Perm(p uint64) *uint64 { return &p }
