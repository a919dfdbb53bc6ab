package fs

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
)

// pxarLink is a symbolic link inside a pxar archive: its target as
// archived, absolute or relative, never followed by pbsfs (the kernel
// resolves it, within the mount or outside as it says).
type pxarLink struct {
	pxarNode
}

var (
	_ fusefs.Node           = pxarLink{}
	_ fusefs.NodeReadlinker = pxarLink{}
)

func (n pxarLink) Readlink(ctx context.Context, req *fuse.ReadlinkRequest) (string, error) {
	e, err := n.entry()
	if err != nil {
		return "", err
	}
	return e.LinkTarget, nil
}
