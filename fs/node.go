package fs

import (
	"context"
	"hash/fnv"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
)

// rootInode is the inode number of the mount's root; FUSE fixes it at 1.
const rootInode = 1

// inodeOf is the inode number of the file at rel (the path relative to the
// mount root, which is also its path relative to the datastore root): the
// FNV-64a hash of the path. It is deterministic across mounts and stable for
// as long as the path exists, which is what `find`, `du`, `tar` and editors
// comparing st_ino need; 0 is invalid and 1 is the root's, so both are
// moved out of the way. Collisions need 2^32 files to become likely.
func inodeOf(rel string) uint64 {
	if rel == "" {
		return rootInode
	}
	h := fnv.New64a()
	h.Write([]byte(rel))
	v := h.Sum64()
	if v < 2 {
		v += 2
	}
	return v
}

// node is what every node of this package is: a bazil node with a base.
type node interface {
	fusefs.Node
	base() *nodeBase
}

// nodeBase is embedded by every node.
//
// Memory: a walk of a store with 100,000 snapshots keeps some 400,000 nodes
// (each snapshot directory with its notes and manifest.json, and more), so
// every byte a node or directory carries costs about 0.4 MB there. That is
// why the fields below and in children are as small as they are.
type nodeBase struct {
	fs *FS
	// rel is the path relative to the mount root (and to the datastore
	// root) — for the notes, manifest.json and owner files only their name,
	// the rest being the parent's (see relPath): full paths would be some
	// 100 bytes per file.
	rel string
	ino uint64

	// parent is the directory whose child cache holds this node under the
	// last element of rel, which Forget removes it from; set before the
	// node is published, so it needs no lock. (A field, not a closure.)
	parent *dirBase

	// primed holds the attributes computed by the lookup that returned this
	// node, for the Attr call bazil makes right after it (see lookupChild),
	// and is nil otherwise: a pointer, not ~170 bytes of fields, since it
	// is needed only for a moment after each lookup.
	primed atomic.Pointer[primedAttr]
}

// Poll answers ENOSYS, which tells the kernel that this file system does
// not implement poll: the kernel stops sending POLL requests for good and
// reports every file ready itself (FUSE's no_poll). bazil's default
// instead answers "ready" to each request, so the kernel keeps asking, and
// the Go runtime (which registers every opened regular file with epoll)
// made each open by a Go program cost one more round trip — a third of a
// warm `os.ReadFile` of a notes file. Every node embeds nodeBase, so the
// first POLL of a mount is refused whatever file it is for.
func (*nodeBase) Poll(ctx context.Context, req *fuse.PollRequest, resp *fuse.PollResponse) error {
	return syscall.ENOSYS
}

var _ fusefs.NodePoller = (*nodeBase)(nil)

// primedAttr is what prime keeps.
type primedAttr struct {
	a  fuse.Attr
	at time.Time
}

// primeWindow bounds how old primed attributes may be when used.
const primeWindow = 100 * time.Millisecond

// prime keeps a for the next Attr call.
func (n *nodeBase) prime(a fuse.Attr) {
	n.primed.Store(&primedAttr{a: a, at: time.Now()})
}

// dropPrimed forgets primed attributes (after a change).
func (n *nodeBase) dropPrimed() {
	n.primed.Store(nil)
}

// takePrimed fills a with primed attributes, if fresh ones are there, and
// consumes them. Every Attr starts with it.
func (n *nodeBase) takePrimed(a *fuse.Attr) bool {
	p := n.primed.Swap(nil)
	if p == nil || time.Since(p.at) > primeWindow {
		return false
	}
	*a = p.a
	return true
}

func (n *nodeBase) base() *nodeBase { return n }

// Forget implements fusefs.NodeForgetter: the kernel dropped its last
// reference, so the parent stops handing out this object and a later lookup
// makes a fresh one (restic's TreeCache pattern; keeps memory bounded on
// large stores).
func (n *nodeBase) Forget() {
	if n.parent != nil {
		n.parent.kids.remove(path.Base(n.rel), n)
	}
}

// relPath is the node's path relative to the mount root.
func (n *nodeBase) relPath() string {
	if n.parent == nil || strings.Contains(n.rel, "/") {
		return n.rel
	}
	return path.Join(n.parent.rel, n.rel)
}

// display is the node's path for log lines.
func (n *nodeBase) display() string { return "/" + n.relPath() }

func newBase(f *FS, rel string) nodeBase {
	return nodeBase{fs: f, rel: rel, ino: inodeOf(rel)}
}

// newFileBase is the base of the file name in directory d, which keeps only
// the name (see nodeBase.rel).
func newFileBase(f *FS, d *dirBase, name string) nodeBase {
	return nodeBase{fs: f, rel: name, ino: inodeOf(d.rel + "/" + name), parent: d}
}

// children caches a directory's child nodes by name, so that a lookup
// returns the same node object for the same name until the kernel forgets
// it. bazil keys its node IDs by object; a fresh object per lookup would
// give each lookup a new node ID, defeat the kernel's caches and confuse
// tools that compare inodes (restic commit 6ec2b62ec, macOS #4971).
//
// Most directories have few children (a snapshot directory two), so the
// first fewKids live in a small slice searched linearly, and only larger
// directories get a map (an empty Go map with one group of slots costs
// some 300 bytes; see nodeBase on memory).
type children struct {
	mu  sync.Mutex
	few []kid           // while there are at most fewKids children
	m   map[string]node // once there are more (few is nil then)
}

type kid struct {
	name string
	n    node
}

// fewKids is how many children are kept in the slice before a map is used.
const fewKids = 8

// find returns the cached child name; the caller holds mu.
func (c *children) find(name string) (node, bool) {
	if c.m != nil {
		n, ok := c.m[name]
		return n, ok
	}
	for _, k := range c.few {
		if k.name == name {
			return k.n, true
		}
	}
	return nil, false
}

// del removes name if it maps to a node whose base is b (any node if b is
// nil); the caller holds mu.
func (c *children) del(name string, b *nodeBase) {
	if c.m != nil {
		if cur, ok := c.m[name]; ok && (b == nil || cur.base() == b) {
			delete(c.m, name)
		}
		return
	}
	for i, k := range c.few {
		if k.name == name && (b == nil || k.n.base() == b) {
			last := len(c.few) - 1
			c.few[i] = c.few[last]
			c.few[last] = kid{}
			c.few = c.few[:last]
			return
		}
	}
}

// get returns the cached child name, or makes, caches and returns a new one
// with mk (created then reports true); owner is the directory c belongs to.
func (c *children) get(owner *dirBase, name string, mk func() node) (n node, created bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.find(name); ok {
		return n, false
	}
	n = mk()
	n.base().parent = owner
	switch {
	case c.m != nil:
		c.m[name] = n
	case len(c.few) < fewKids:
		c.few = append(c.few, kid{name, n})
	default:
		c.m = make(map[string]node, 2*fewKids)
		for _, k := range c.few {
			c.m[k.name] = k.n
		}
		c.few = nil
		c.m[name] = n
	}
	return n, true
}

// peek returns the cached child name, if any.
func (c *children) peek(name string) (node, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.find(name)
}

// list returns the cached children.
func (c *children) list() []kid {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		return append([]kid(nil), c.few...)
	}
	out := make([]kid, 0, len(c.m))
	for name, n := range c.m {
		out = append(out, kid{name, n})
	}
	return out
}

// remove drops name from the cache if it still maps to the node whose base
// is b.
func (c *children) remove(name string, b *nodeBase) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.del(name, b)
}

// clear empties the cache.
func (c *children) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.few, c.m = nil, nil
}

// drop removes name from the cache whatever it maps to.
func (c *children) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.del(name, nil)
}

// dirBase is embedded by every directory node: the child cache, the lookup
// protocol and deliberate answers to every change a directory does not
// support (bazil's defaults would be EIO or a silent success).
type dirBase struct {
	nodeBase
	kids children

	// seen is the digest (datastore.FileID.Digest) of the directory's stamp as last
	// handed to the kernel or checked by the revalidator; 0 before either.
	seen atomic.Uint64
}

// dirNode is what every directory node is: the revalidator (revalidate.go)
// walks them through their child caches and stats each.
type dirNode interface {
	node
	fusefs.HandleReadDirAller
	dir() *dirBase
	// stat returns the stamp of the datastore directory the node shows.
	stat() (datastore.Stamp, error)
}

func (d *dirBase) dir() *dirBase { return d }

// attrOf is Attr for the directory node self (whose dirBase d is): primed
// attributes right after a lookup, else one stat.
func (d *dirBase) attrOf(self dirNode, a *fuse.Attr) error {
	if d.takePrimed(a) {
		return nil
	}
	st, err := self.stat()
	if err != nil {
		return d.fs.errno("stat "+d.display(), err)
	}
	d.fs.dirAttr(a, d.ino, st)
	d.seen.Store(st.ID().Digest())
	return nil
}

// openDir is Open for the directory node self: the kernel may keep the
// listing in its page cache (FOPEN_CACHE_DIR) across opens (KEEP_CACHE), so
// a repeated `ls` or walk costs an OPENDIR and a RELEASEDIR and no READDIR.
// What invalidates it: any change made through the mount (the kernel drops a
// directory's cached listing itself when a create, unlink, rename, mkdir
// or rmdir goes through it), the invalidations pbsfs sends after its own
// changes, and the revalidator for changes PBS makes.
func openDir(self dirNode, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	if !self.dir().fs.cacheDirs {
		return self, nil
	}
	resp.Flags |= fuse.OpenCacheDir | fuse.OpenKeepCache
	return self, nil
}

// lookupChild returns the child for name, made with mk when not cached, once
// its attributes could be read (which is also how a missing child is found
// out). A child that turned out not to exist is not kept. bazil asks for the
// attributes once more right afterwards; the node answers that call from
// what was just computed (prime/takePrimed), so a lookup costs one stat or
// manifest check, not two.
func (d *dirBase) lookupChild(ctx context.Context, name string, resp *fuse.LookupResponse, mk func() node) (fusefs.Node, error) {
	n, created := d.kids.get(d, name, mk)
	if err := n.Attr(ctx, &resp.Attr); err != nil {
		if created {
			d.kids.remove(name, n.base())
		}
		return nil, err
	}
	n.base().prime(resp.Attr)
	resp.EntryValid = d.fs.ttl
	return n, nil
}

// dots are the "." and ".." entries every directory lists.
func (d *dirBase) dots() []fuse.Dirent {
	parent := uint64(rootInode)
	if d.rel != "" {
		if p := path.Dir(d.rel); p != "." {
			parent = inodeOf(p)
		}
	}
	return []fuse.Dirent{
		{Inode: d.ino, Type: fuse.DT_Dir, Name: "."},
		{Inode: parent, Type: fuse.DT_Dir, Name: ".."},
	}
}

// dirent is the listing entry of child name of type typ.
func (d *dirBase) dirent(name string, typ fuse.DirentType) fuse.Dirent {
	return fuse.Dirent{Inode: inodeOf(path.Join(d.rel, name)), Type: typ, Name: name}
}

// notSupported is the errno for a change this directory does not support:
// EROFS in a read-only mount, else EPERM.
func (d *dirBase) notSupported() error {
	if d.fs.ro {
		return d.fs.readOnlyErr()
	}
	return errPerm
}

// Mkdir: namespaces, groups and snapshots are made by PBS, not by mkdir.
func (d *dirBase) Mkdir(ctx context.Context, req *fuse.MkdirRequest) (fusefs.Node, error) {
	return nil, d.notSupported()
}

// Remove: the default for directories that hold nothing removable.
func (d *dirBase) Remove(ctx context.Context, req *fuse.RemoveRequest) error {
	return d.notSupported()
}

// Create: files can only be created where editors need scratch files
// (snapshot and group directories override this).
func (d *dirBase) Create(ctx context.Context, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	return nil, nil, d.notSupported()
}

// Symlink: as Create.
func (d *dirBase) Symlink(ctx context.Context, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	return nil, d.notSupported()
}

// Mknod: as Create.
func (d *dirBase) Mknod(ctx context.Context, req *fuse.MknodRequest) (fusefs.Node, error) {
	return nil, d.notSupported()
}

// Link: hard links are never supported.
func (d *dirBase) Link(ctx context.Context, req *fuse.LinkRequest, old fusefs.Node) (fusefs.Node, error) {
	return nil, d.notSupported()
}

// Rename: as Create.
func (d *dirBase) Rename(ctx context.Context, req *fuse.RenameRequest, newDir fusefs.Node) error {
	return d.notSupported()
}

// Setattr on a directory: times are accepted and ignored (touch, cp -p and
// tar set them); mode, owner and size changes are refused.
func (d *dirBase) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	if d.fs.ro {
		return d.fs.readOnlyErr()
	}
	if req.Valid.Mode() || req.Valid.Uid() || req.Valid.Gid() || req.Valid.Size() {
		return errPerm
	}
	return nil
}

// Fsync on a directory has nothing to do.
func (d *dirBase) Fsync(ctx context.Context, req *fuse.FsyncRequest) error { return nil }

// dirAttr fills a for a directory from the stamp of the directory it shows.
// Its permission bits are that directory's own (without write bits in a
// read-only mount): with --allow-other the kernel checks them
// (default_permissions), so other users get exactly as far through the
// mount as the datastore's modes let them get on disk.
func (f *FS) dirAttr(a *fuse.Attr, ino uint64, st datastore.Stamp) {
	mode := st.Mode.Perm()
	if f.ro {
		mode &^= 0o222
	}
	a.Valid = f.ttl
	a.Inode = ino
	a.Mode = os.ModeDir | mode
	a.Size = uint64(max(st.Size, 0))
	a.Blocks = (a.Size + 511) / 512
	a.Nlink = uint32(max(st.Nlink, 1))
	a.Uid, a.Gid = st.UID, st.GID
	a.Mtime, a.Ctime, a.Atime = st.Mtime, st.Ctime, st.Mtime
	a.BlockSize = 4096
}

// fileAttr fills a for a file of size bytes whose content, times, owner and
// permission bits come from the datastore file st (for group notes not
// written yet, the group directory: the bits a new file there gets). As for
// directories, the bits are the datastore's own, so that other users can
// read a file through an --allow-other mount only if they could read the
// file it comes from, and change notes only if they could write the file
// that stores them. Execute bits are dropped, and write bits too for files
// that cannot be written (writable false) and in read-only mounts.
func (f *FS) fileAttr(a *fuse.Attr, ino uint64, size int, st datastore.Stamp, writable bool) {
	perm := st.Mode.Perm() &^ 0o111
	if !writable || f.ro {
		perm &^= 0o222
	}
	a.Valid = f.ttl
	a.Inode = ino
	a.Mode = perm
	a.Size = uint64(size)
	a.Blocks = (a.Size + 511) / 512
	a.Nlink = 1
	a.Uid, a.Gid = st.UID, st.GID
	a.Mtime, a.Ctime, a.Atime = st.Mtime, st.Ctime, st.Mtime
	a.BlockSize = 4096
}

// writable reports whether open flags ask for write access.
func writable(fl fuse.OpenFlags) bool {
	return fl&fuse.OpenAccessModeMask != fuse.OpenReadOnly
}
