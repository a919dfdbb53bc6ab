package fs

import fusefs "bazil.org/fuse/fs"

// pxarSpecial is a block or character device, FIFO or socket inside a pxar
// archive: its type, permission bits, owner, times and device numbers, as
// archived. Opening one is the kernel's business, never a request to
// pbsfs: the mount is nodev (devices cannot be opened through it), a FIFO
// opens as an empty local pipe, and a socket cannot be opened.
type pxarSpecial struct {
	pxarNode
}

var _ fusefs.Node = pxarSpecial{}
