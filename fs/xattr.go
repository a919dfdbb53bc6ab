package fs

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// Extended attributes: pbsfs has none. For a node without these methods
// bazil answers every xattr request with ENOTSUP, and the kernel asks again
// next time: a GETXATTR "security.capability" round trip before every
// write (file_remove_privs), one or two per entry of every `ls -l` (ACLs,
// SELinux label). Answering ENOSYS instead makes the kernel note that the
// file system has no xattrs at all (fc->no_getxattr and friends) and answer
// EOPNOTSUPP itself from then on — the errno callers saw before, without
// the round trips.

var (
	_ fusefs.NodeGetxattrer    = (*nodeBase)(nil)
	_ fusefs.NodeListxattrer   = (*nodeBase)(nil)
	_ fusefs.NodeSetxattrer    = (*nodeBase)(nil)
	_ fusefs.NodeRemovexattrer = (*nodeBase)(nil)
)

// Getxattr: no xattrs (ENOSYS: the kernel stops asking).
func (n *nodeBase) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	return fuse.ENOSYS
}

// Listxattr: no xattrs (ENOSYS: the kernel stops asking).
func (n *nodeBase) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	return fuse.ENOSYS
}

// Setxattr: none can be set (ENOSYS: the kernel answers EOPNOTSUPP from
// then on).
func (n *nodeBase) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error {
	return fuse.ENOSYS
}

// Removexattr: there are none (ENOSYS: the kernel answers EOPNOTSUPP from
// then on).
func (n *nodeBase) Removexattr(ctx context.Context, req *fuse.RemovexattrRequest) error {
	return fuse.ENOSYS
}
