package fs

import (
	"context"
	"syscall"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// Extended attributes: the files of pxar archives have the ones archived
// (pxarentry.go); every other node has none and answers so per request —
// ENODATA to getxattr, an empty list to listxattr, ENOTSUP to changes.
//
// Not ENOSYS, though it would save round trips: ENOSYS makes the kernel
// note that the whole file system has no xattrs (fc->no_getxattr and
// friends) and answer EOPNOTSUPP itself from then on, for every file of the
// mount — the first `ls -l` of a snapshot directory would hide the xattrs
// and ACLs of every archive. The price is a round trip per xattr call on
// pbsfs's own files: `ls -l` asks for security.selinux and
// system.posix_acl_access (and _default for directories) of every entry,
// writes to notes for security.capability. Without archives
// (--no-archives) there is nothing to show, and the answer is ENOSYS as
// before: the kernel stops asking.

var (
	_ fusefs.NodeGetxattrer    = (*nodeBase)(nil)
	_ fusefs.NodeListxattrer   = (*nodeBase)(nil)
	_ fusefs.NodeSetxattrer    = (*nodeBase)(nil)
	_ fusefs.NodeRemovexattrer = (*nodeBase)(nil)
)

// errNoXattrSupport is what setting or removing an xattr on pbsfs's own
// files gives: "Operation not supported", as before (and as the kernel says
// for file systems without xattrs).
var errNoXattrSupport = fuse.Errno(syscall.ENOTSUP)

// Getxattr: no such attribute.
func (n *nodeBase) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	if !n.fs.xattrs {
		return fuse.ENOSYS
	}
	return fuse.ErrNoXattr
}

// Listxattr: none.
func (n *nodeBase) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	if !n.fs.xattrs {
		return fuse.ENOSYS
	}
	return nil
}

// Setxattr: none can be set (EROFS in a read-only mount).
func (n *nodeBase) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error {
	if !n.fs.xattrs {
		return fuse.ENOSYS
	}
	if n.fs.ro {
		return n.fs.readOnlyErr()
	}
	return errNoXattrSupport
}

// Removexattr: there are none (EROFS in a read-only mount).
func (n *nodeBase) Removexattr(ctx context.Context, req *fuse.RemovexattrRequest) error {
	if !n.fs.xattrs {
		return fuse.ENOSYS
	}
	if n.fs.ro {
		return n.fs.readOnlyErr()
	}
	return errNoXattrSupport
}
