package encoder

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"pbsfs/pxar"
)

// FromDir reads the directory tree at path into a Node tree, as
// proxmox-backup-client would archive it (without its exclusions, chattr
// flags and quota project ids, which FromDir does not read):
//   - lstat metadata (nothing is followed), readlink targets, device numbers;
//   - regular files with a link count above one become hardlinks to their
//     first occurrence in archive order, keyed by (device, inode);
//   - for regular files and directories (the client reads no attributes of
//     other kinds): xattrs in listxattr order, except system.* (ACLs
//     become ACL items parsed from the kernel's xattr encoding, others are
//     dropped) and security.capability (the FCAPS item);
//   - file contents are read when the tree is encoded (Node.Open).
func FromDir(path string) (*Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("pxar from dir: %w", &os.PathError{Op: "lstat", Path: path, Err: err})
	}
	if uint64(st.Mode)&pxar.ModeTypeMask != pxar.ModeDir {
		return nil, fmt.Errorf("pxar from dir: %s is not a directory", path)
	}
	r := &dirReader{links: make(map[devIno]*Node)}
	return r.node(path, "", &st)
}

type devIno struct{ dev, ino uint64 }

type dirReader struct {
	links map[devIno]*Node // first occurrences of multiply linked files
}

func (r *dirReader) node(path, name string, st *unix.Stat_t) (*Node, error) {
	n := &Node{
		Name: name, Mode: uint64(st.Mode), UID: st.Uid, GID: st.Gid,
		MtimeSec: st.Mtim.Sec, MtimeNsec: uint32(st.Mtim.Nsec),
	}
	switch n.kind() {
	case pxar.ModeRegular:
		if st.Nlink > 1 {
			k := devIno{st.Dev, st.Ino}
			if first, ok := r.links[k]; ok {
				return &Node{Name: name, HardlinkTo: first}, nil
			}
			r.links[k] = n
		}
		n.Size = uint64(st.Size)
		n.Open = func() (io.ReadCloser, error) { return os.Open(path) }
	case pxar.ModeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("pxar from dir: %w", err)
		}
		n.Symlink = target
	case pxar.ModeBlock, pxar.ModeChar:
		n.RdevMajor, n.RdevMinor = uint64(unix.Major(st.Rdev)), uint64(unix.Minor(st.Rdev))
	}
	if k := n.kind(); k == pxar.ModeRegular || k == pxar.ModeDir {
		if err := readAttrs(path, n); err != nil {
			return nil, fmt.Errorf("pxar from dir: %s: %w", path, err)
		}
	}
	if n.kind() != pxar.ModeDir {
		return n, nil
	}
	entries, err := os.ReadDir(path) // sorted by name bytes
	if err != nil {
		return nil, fmt.Errorf("pxar from dir: %w", err)
	}
	for _, e := range entries {
		cpath := filepath.Join(path, e.Name())
		var cst unix.Stat_t
		if err := unix.Lstat(cpath, &cst); err != nil {
			return nil, fmt.Errorf("pxar from dir: %w", &os.PathError{Op: "lstat", Path: cpath, Err: err})
		}
		c, err := r.node(cpath, e.Name(), &cst)
		if err != nil {
			return nil, err
		}
		n.Children = append(n.Children, c)
	}
	return n, nil
}

const (
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
	xattrFCaps      = "security.capability"
)

// readAttrs fills n's xattrs, ACL and file capabilities.
func readAttrs(path string, n *Node) error {
	names, err := listXattrs(path)
	if err != nil {
		return err
	}
	for _, name := range names {
		value, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
		switch {
		case name == xattrACLAccess:
			if err := parseACL(value, &n.ACL, false); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case name == xattrACLDefault:
			if err := parseACL(value, &n.ACL, true); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case name == xattrFCaps:
			n.FCaps = value
		case strings.HasPrefix(name, "system."):
			// other system attributes (e.g. system.nfs4_acl) are not stored
		default:
			n.Xattrs = append(n.Xattrs, Xattr{Name: name, Value: value})
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	for {
		size, err := unix.Llistxattr(path, nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		size, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		var names []string
		for _, s := range strings.Split(string(buf[:size]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		size, err = unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:size], nil
	}
}

// Tags of the kernel's POSIX ACL xattr encoding (linux/posix_acl.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclVersion  = 2
)

// parseACL decodes a system.posix_acl_access/default value (u32 version
// 2, then entries of u16 tag, u16 permissions, u32 id) into acl as the
// client does: named entries sorted by id; for the access ACL the
// group_obj permissions only when there is a mask (the mode's group bits
// then hold the mask); for the default ACL the base entries, NO_MASK where
// absent.
func parseACL(b []byte, acl *ACL, isDefault bool) error {
	if len(b) < 4 || (len(b)-4)%8 != 0 || binary.LittleEndian.Uint32(b) != aclVersion {
		return fmt.Errorf("malformed ACL of %d bytes", len(b))
	}
	var users, groups []ACLEntry
	base := map[uint16]uint64{}
	for p := 4; p < len(b); p += 8 {
		tag := binary.LittleEndian.Uint16(b[p:])
		perm := uint64(binary.LittleEndian.Uint16(b[p+2:]))
		id := uint64(binary.LittleEndian.Uint32(b[p+4:]))
		switch tag {
		case aclUser:
			users = append(users, ACLEntry{id, perm})
		case aclGroup:
			groups = append(groups, ACLEntry{id, perm})
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			base[tag] = perm
		default:
			return fmt.Errorf("unknown ACL tag %#x", tag)
		}
	}
	byID := func(a, b ACLEntry) int {
		if a.ID != b.ID {
			return cmp.Compare(a.ID, b.ID)
		}
		return cmp.Compare(a.Perm, b.Perm)
	}
	slices.SortFunc(users, byID)
	slices.SortFunc(groups, byID)
	if isDefault {
		if len(base) > 0 {
			get := func(tag uint16) uint64 {
				if v, ok := base[tag]; ok {
					return v
				}
				return pxar.ACLNoMask
			}
			acl.Default = &ACLDefault{UserObj: get(aclUserObj), GroupObj: get(aclGroupObj), Other: get(aclOther), Mask: get(aclMask)}
		}
		acl.DefaultUsers, acl.DefaultGroups = users, groups
		return nil
	}
	if g, ok := base[aclGroupObj]; ok {
		if _, hasMask := base[aclMask]; hasMask {
			acl.GroupObj = Perm(g)
		}
	}
	acl.Users, acl.Groups = users, groups
	return nil
}
