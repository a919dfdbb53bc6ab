package fs

import (
	"context"
	"hash/fnv"
	"os"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/pxar"
)

// What every node inside a pxar archive shares (pxardir.go, pxarfile.go,
// pxarlink.go, pxarspecial.go): the opened archive, the decoded entry, the
// attributes exactly as archived, the xattrs, and EROFS for every change.
// The format is the pxar package's; these nodes only adapt its entries.

// pxarTree is one opened archive as the mount shows it: every node of the
// tree refers to it.
type pxarTree struct {
	arch *pxar.Archive
	// seed makes the inode numbers of this archive's entries (inoOf):
	// the archive's path in the mount and its index checksums.
	seed uint64
	// rootIno is the root directory's inode number: that of its path,
	// as the snapshot directory lists it.
	rootIno uint64
}

func newPxarTree(arch *pxar.Archive, rel string, rootIno uint64, identity ...string) *pxarTree {
	h := fnv.New64a()
	h.Write([]byte(rel))
	for _, s := range identity {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	return &pxarTree{arch: arch, seed: h.Sum64(), rootIno: rootIno}
}

// inoOf is the inode number of entry e: the archive's seed mixed with the
// entry's ID (unique in the archive, shared by hardlinks), through the
// splitmix64 finalizer, so that neighbouring IDs of one archive and equal
// IDs of two archives land far apart. The archive root keeps the number of
// its path. 0 and 1 (invalid, the mount root) are moved up by 2.
func (t *pxarTree) inoOf(e *pxar.Entry, root bool) uint64 {
	if root {
		return t.rootIno
	}
	z := t.seed ^ (e.ID * 0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	if z < 2 {
		z += 2
	}
	return z
}

// pxarAttrValid is how long the kernel may keep attributes and entries of
// archived files: an archive never changes once written. (A snapshot that
// is pruned disappears all the same: the revalidator invalidates its
// directory entry, which takes the subtree with it.)
const pxarAttrValid = 10 * time.Minute

// pxarNode is embedded by every node inside an archive but directories:
// files, symlinks and special files, which are most entries. After a walk
// the kernel holds an inode for every entry and bazil a node for each, so
// what a node keeps is what a walked archive costs per entry. It keeps
// what the kernel asks for on every walk (the attributes, in a compact
// pxarStat), not the decoded entry (with its xattr, ACL and link fields
// some 400 bytes). What only some requests need — the content's location
// (Open), a symlink's target, the xattrs of an entry that has any — is
// found again through the parent directory's entry and the name (pxar's
// Lookup: a binary search in the reader's bounded cache of listed
// directories, else one goodbye-table search).
//
// Nodes of these kinds are values, not pointers, and comparable: bazil
// keys its node IDs by the Node interface value (Server.nodeRef), so a
// lookup that makes the node again from the same directory view, name and
// entry gets the node ID the kernel already has, and no child cache is
// needed to hand out the same object (which cost ~56 bytes a name). The
// value bazil keeps is 64 bytes, a size class of Go's allocator.
type pxarNode struct {
	dir  *pxarDir // the parent directory's view, whose tree and entry never change
	name string
	st   pxarStat
	ino  uint64
}

// pxarStat is what a node keeps of its entry: its attributes as archived,
// in 32 bytes (which makes a file's node 96, a size class of Go's
// allocator).
type pxarStat struct {
	mtimeSec int64
	// size is a regular file's content size, a symlink's target length,
	// and a device's number in the kernel's encoding (encodeDev).
	size      uint64
	uid, gid  uint32
	mtimeNsec uint32
	mode      uint16 // archived st_mode (16 bits hold type and permissions)
	kind      pxar.Kind
	flags     uint8 // statHardlink, statXattrs
}

const (
	statHardlink = 1 << iota // the entry is a hardlink
	statXattrs               // the entry has xattrs, file capabilities or ACLs
)

func statOf(e *pxar.Entry) pxarStat {
	st := pxarStat{mtimeSec: e.MtimeSec, uid: e.UID, gid: e.GID, mtimeNsec: e.MtimeNsec, mode: uint16(e.Mode), kind: e.Kind}
	if e.Hardlink {
		st.flags |= statHardlink
	}
	if e.HasXattrs() {
		st.flags |= statXattrs
	}
	switch e.Kind {
	case pxar.KindFile, pxar.KindSymlink:
		st.size = e.Size
	case pxar.KindBlockDev, pxar.KindCharDev:
		st.size = uint64(encodeDev(e.RdevMajor, e.RdevMinor))
	}
	return st
}

// newPxarLeaf makes the node of entry e, which is not a directory, in the
// directory view v (pxarDir.current).
func newPxarLeaf(v *pxarDir, e *pxar.Entry) fusefs.Node {
	n := pxarNode{dir: v, name: e.Name, st: statOf(e), ino: v.tree.inoOf(e, false)}
	switch e.Kind {
	case pxar.KindFile:
		return pxarFile{n}
	case pxar.KindSymlink:
		return pxarLink{n}
	}
	return pxarSpecial{n}
}

// isComparable does not compile for a type that is not comparable: bazil
// would panic on the first lookup that returns it (a map key).
func isComparable[T comparable]() {}

var _ = isComparable[pxarFile]
var _ = isComparable[pxarLink]
var _ = isComparable[pxarSpecial]

// entry decodes the node's entry again (see pxarNode).
func (n pxarNode) entry() (*pxar.Entry, error) {
	e, err := n.dir.tree.arch.Lookup(n.dir.e, n.name)
	if err != nil {
		return nil, n.dir.fs.errno("decode "+n.display(), err)
	}
	return e, nil
}

// display is the node's path for log lines.
func (n pxarNode) display() string { return n.dir.display() + "/" + n.name }

// pxarDirentType is the listing type of an entry.
func pxarDirentType(k pxar.Kind) fuse.DirentType {
	switch k {
	case pxar.KindDir:
		return fuse.DT_Dir
	case pxar.KindFile:
		return fuse.DT_File
	case pxar.KindSymlink:
		return fuse.DT_Link
	case pxar.KindBlockDev:
		return fuse.DT_Block
	case pxar.KindCharDev:
		return fuse.DT_Char
	case pxar.KindFIFO:
		return fuse.DT_FIFO
	case pxar.KindSocket:
		return fuse.DT_Socket
	}
	return fuse.DT_Unknown
}

// pxarAttr fills a with entry e's attributes as archived: type and
// permission bits including setuid, setgid and sticky, owner, mtime with
// nanoseconds (atime and ctime, which the archive does not keep, are the
// mtime), size (the bytes a read returns; a symlink's target length) and
// device numbers. Link counts: 1 for directories ("not counted", as on
// btrfs: counting subdirectories would decode every subdirectory, and 1
// keeps find's leaf optimisation off) and files; 2 for an entry the archive
// stores as a hardlink (it shares its target's inode number; the archive
// does not say how many names the target has).
func pxarAttr(a *fuse.Attr, ino uint64, st *pxarStat) {
	a.Valid = pxarAttrValid
	a.Inode = ino
	a.Mode = pxarMode(st.kind, st.mode)
	if st.kind == pxar.KindBlockDev || st.kind == pxar.KindCharDev {
		a.Rdev = uint32(st.size)
	} else {
		a.Size = st.size
	}
	a.Blocks = (a.Size + 511) / 512
	a.Nlink = 1
	if st.flags&statHardlink != 0 {
		a.Nlink = 2
	}
	a.Uid, a.Gid = st.uid, st.gid
	a.Mtime = time.Unix(st.mtimeSec, int64(st.mtimeNsec))
	a.Atime, a.Ctime = a.Mtime, a.Mtime
	a.BlockSize = 4096
}

// pxarMode maps an archived st_mode of an entry of kind k to an
// os.FileMode (bazil turns it back into st_mode).
func pxarMode(k pxar.Kind, mode uint16) os.FileMode {
	m := os.FileMode(mode & 0o777)
	switch k {
	case pxar.KindDir:
		m |= os.ModeDir
	case pxar.KindSymlink:
		m |= os.ModeSymlink
	case pxar.KindBlockDev:
		m |= os.ModeDevice
	case pxar.KindCharDev:
		m |= os.ModeDevice | os.ModeCharDevice
	case pxar.KindFIFO:
		m |= os.ModeNamedPipe
	case pxar.KindSocket:
		m |= os.ModeSocket
	}
	if mode&syscall.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&syscall.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

// encodeDev is the kernel's 32-bit device number encoding (new_encode_dev),
// which FUSE attributes carry: 12 bits of major, 20 of minor. Larger
// numbers do not fit and are cut, as the kernel's own encoding would.
func encodeDev(major, minor uint64) uint32 {
	return uint32(minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12)
}

func (n pxarNode) Attr(ctx context.Context, a *fuse.Attr) error {
	pxarAttr(a, n.ino, &n.st)
	return nil
}

// Poll: see nodeBase.Poll.
func (pxarNode) Poll(ctx context.Context, req *fuse.PollRequest, resp *fuse.PollResponse) error {
	return syscall.ENOSYS
}

var (
	_ fusefs.NodeGetxattrer    = pxarNode{}
	_ fusefs.NodeListxattrer   = pxarNode{}
	_ fusefs.NodeSetxattrer    = pxarNode{}
	_ fusefs.NodeRemovexattrer = pxarNode{}
	_ fusefs.NodeSetattrer     = pxarNode{}
	_ fusefs.NodeAccesser      = pxarNode{}
	_ fusefs.NodeFsyncer       = pxarNode{}
	_ fusefs.NodePoller        = pxarNode{}
)

// Getxattr answers the archived xattrs, file capabilities as
// security.capability and ACLs as system.posix_acl_access/default in the
// kernel's encoding (the pxar package builds them); ENODATA for others.
// bazil answers ERANGE when the caller's buffer is too small, and the size
// alone to a size query.
func (n pxarNode) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	if n.st.flags&statXattrs == 0 {
		return fuse.ErrNoXattr
	}
	e, err := n.entry()
	if err != nil {
		return err
	}
	return getPxarXattr(e, req, resp)
}

func getPxarXattr(e *pxar.Entry, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	v, ok := e.Xattr(req.Name)
	if !ok {
		return fuse.ErrNoXattr
	}
	resp.Xattr = v
	return nil
}

// Listxattr lists the names Getxattr answers.
func (n pxarNode) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	if n.st.flags&statXattrs == 0 {
		return nil
	}
	e, err := n.entry()
	if err != nil {
		return err
	}
	resp.Append(e.XattrNames()...)
	return nil
}

// errArchiveRO is the answer to every change inside an archive: archives
// are read-only whatever their modes say.
var errArchiveRO = fuse.Errno(syscall.EROFS)

func (n pxarNode) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error {
	return errArchiveRO
}

func (n pxarNode) Removexattr(ctx context.Context, req *fuse.RemovexattrRequest) error {
	return errArchiveRO
}

// Setattr: nothing can be changed, times included.
func (n pxarNode) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	return errArchiveRO
}

// Access refuses write access (for mounts without default_permissions,
// where the kernel asks): editors and `test -w` see read-only files.
func (n pxarNode) Access(ctx context.Context, req *fuse.AccessRequest) error {
	if req.Mask&accessWrite != 0 {
		return errArchiveRO
	}
	return nil
}

// Fsync has nothing to write.
func (n pxarNode) Fsync(ctx context.Context, req *fuse.FsyncRequest) error { return nil }
