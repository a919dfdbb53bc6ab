package fs

import (
	"container/list"
	"context"
	"errors"
	"os"
	"sync"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	"pbsfs/pxar"
)

// pxarDir is a directory inside a pxar archive, or the archive's root
// (root.pxar/ for root.pxar.didx, or for the split pair root.mpxar.didx and
// root.ppxar.didx). Listings are the archive's, sorted by name; lookups go
// through the directory's goodbye table (the pxar package), never a scan of
// the archive. Nothing can be changed (EROFS).
//
// The root opens the archive through the datastore (which keeps opened
// archives while their files are unchanged) and looks again whenever the
// kernel asks for its attributes, lists it or looks a name up in it: if the
// snapshot's archive was replaced, the root shows the new one (with fresh
// child nodes). Directories below keep the archive they were found in.
//
// Only subdirectories are kept in the child cache (dirBase.kids): files,
// symlinks and special files are comparable values (pxarNode) that bazil
// recognises by value.
type pxarDir struct {
	dirBase
	parentIno uint64
	// parent is the node the kernel looked this directory up in (nil for
	// the root and its view): eviction invalidates the directory's entry
	// there (pxarcap.go).
	parent *pxarDir

	// below the root: the archive and the directory's entry in it, which
	// never change.
	tree *pxarTree
	e    *pxar.Entry

	// root only: the archive's snapshot and shown name, and the view of
	// the archive's root directory as last opened (nil before): a pxarDir
	// with tree and e set, which the root's children refer to, and which
	// is replaced, never changed, when the snapshot's archive is.
	root bool
	sn   datastore.Snapshot
	name string
	mu   sync.Mutex
	view *pxarDir

	// the node's place in the mount's cap on held entries (pxarcap.go)
	// and the names looked up in it since; guarded by the cap's lock.
	capElem  *list.Element
	capNames []string
}

var (
	_ fusefs.Node                = (*pxarDir)(nil)
	_ fusefs.NodeRequestLookuper = (*pxarDir)(nil)
	_ fusefs.HandleReadDirAller  = (*pxarDir)(nil)
	_ fusefs.NodeOpener          = (*pxarDir)(nil)
	_ fusefs.NodeGetxattrer      = (*pxarDir)(nil)
	_ fusefs.NodeListxattrer     = (*pxarDir)(nil)
	_ fusefs.NodeSetxattrer      = (*pxarDir)(nil)
	_ fusefs.NodeRemovexattrer   = (*pxarDir)(nil)
	_ fusefs.NodeSetattrer       = (*pxarDir)(nil)
	_ fusefs.NodeAccesser        = (*pxarDir)(nil)
	_ fusefs.NodeForgetter       = (*pxarDir)(nil)
)

// newPxarDir is the node of directory entry e of archive t, at rel in the
// mount (the archive's root directory, seen through its root node, if root).
func newPxarDir(f *FS, rel string, parent *pxarDir, parentIno uint64, t *pxarTree, e *pxar.Entry, root bool) *pxarDir {
	return &pxarDir{dirBase: dirBase{nodeBase: nodeBase{fs: f, rel: rel, ino: t.inoOf(e, root)}}, parent: parent, parentIno: parentIno, tree: t, e: e}
}

// newPxarRoot is the node of the archive shown as name in snapshot
// directory s.
func newPxarRoot(f *FS, s *snapDir, name string) *pxarDir {
	rel := s.rel + "/" + name
	return &pxarDir{dirBase: dirBase{nodeBase: newBase(f, rel)}, parentIno: s.ino, root: true, sn: s.sn, name: name}
}

// current returns the view of the directory: one with the archive and the
// directory's entry, which never change. That is d itself below the root;
// for the root, the view of the archive's root directory, after checking
// that the snapshot still has the archive it shows.
func (d *pxarDir) current() (*pxarDir, error) {
	if !d.root {
		return d, nil
	}
	arch, info, _, err := d.fs.store.OpenPxar(d.sn, d.name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.view != nil && d.view.tree.arch == arch {
		return d.view, nil
	}
	e, err := arch.Root()
	if err != nil {
		return nil, err
	}
	identity := []string{info.File, info.Csum}
	if info.Payload != nil {
		identity = append(identity, info.Payload.Csum)
	}
	if d.view != nil {
		d.kids.clear() // another archive: its entries are other nodes
	}
	d.view = newPxarDir(d.fs, d.rel, nil, d.parentIno, newPxarTree(arch, d.rel, d.ino, identity...), e, true)
	return d.view, nil
}

// Attr: the directory's attributes as archived. A root whose archive
// cannot be opened — encrypted without the key, or damaged — is still a
// directory, with the times, owner and (readable, searchable) permission
// bits of its index file; listing it gives the error (EACCES, EIO), as
// reading an archive file does.
func (d *pxarDir) Attr(ctx context.Context, a *fuse.Attr) error {
	if d.takePrimed(a) {
		return nil
	}
	v, err := d.current()
	switch {
	case err == nil:
		st := statOf(v.e)
		pxarAttr(a, d.ino, &st)
		return nil
	case errors.Is(err, datastore.ErrEncrypted), errors.Is(err, datastore.ErrCorrupt), errors.Is(err, pxar.ErrCorrupt):
		_, st, serr := d.fs.store.StatArchive(d.sn, d.name)
		if serr != nil {
			return d.fs.errno("stat "+d.display(), serr)
		}
		d.fs.dirAttr(a, d.ino, st)
		r := st.Mode.Perm() & 0o444
		a.Mode = os.ModeDir | r | r>>2
		a.Nlink = 1
		return nil
	}
	return d.fs.errno("stat "+d.display(), err)
}

// Open lets the kernel keep the listing: it never changes.
func (d *pxarDir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	resp.Flags |= fuse.OpenCacheDir | fuse.OpenKeepCache
	return d, nil
}

func (d *pxarDir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	v, err := d.current()
	if err != nil {
		return nil, d.fs.errno("lookup "+d.display()+"/"+req.Name, err)
	}
	// A subdirectory the kernel still holds is reused without decoding
	// anything.
	cached, ok := d.kids.peek(req.Name)
	mk := func() node { return cached }
	if !ok {
		child, err := v.tree.arch.Lookup(v.e, req.Name)
		if err != nil {
			return nil, d.fs.errno("lookup "+d.display()+"/"+req.Name, err)
		}
		if child.Kind != pxar.KindDir {
			// A value: equal to the node the kernel has, if it has one.
			n := newPxarLeaf(v, child)
			if err := n.Attr(ctx, &resp.Attr); err != nil {
				return nil, err
			}
			resp.EntryValid = max(d.fs.ttl, pxarAttrValid)
			d.fs.pxarCap.touch(d, child.Name)
			return n, nil
		}
		mk = func() node { return newPxarDir(d.fs, d.rel+"/"+child.Name, d, d.ino, v.tree, child, false) }
	}
	n, err := d.lookupChild(ctx, req.Name, resp, mk)
	resp.EntryValid = max(resp.EntryValid, pxarAttrValid)
	if err == nil {
		d.fs.pxarCap.touch(d, req.Name)
	}
	return n, err
}

// Forget: the kernel dropped the directory, and every entry below it.
func (d *pxarDir) Forget() {
	d.fs.pxarCap.forget(d)
	d.nodeBase.Forget()
}

// ReadDirAll lists the directory, sorted by name, with the inode numbers
// lookups give.
func (d *pxarDir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	v, err := d.current()
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	list, err := v.tree.arch.ReadDir(v.e)
	if err != nil {
		return nil, d.fs.errno("list "+d.display(), err)
	}
	d.fs.pxarCap.touch(d, "")
	ents := make([]fuse.Dirent, 0, len(list)+2)
	ents = append(ents, fuse.Dirent{Inode: d.ino, Type: fuse.DT_Dir, Name: "."},
		fuse.Dirent{Inode: d.parentIno, Type: fuse.DT_Dir, Name: ".."})
	for _, c := range list {
		ents = append(ents, fuse.Dirent{Inode: v.tree.inoOf(c, false), Type: pxarDirentType(c.Kind), Name: c.Name})
	}
	return ents, nil
}

// Getxattr: the archived ones. A root whose archive cannot be opened has
// none (as its attributes are the index file's), so that `ls -l` of the
// snapshot shows it without an error.
func (d *pxarDir) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	v, err := d.current()
	if err != nil {
		return fuse.ErrNoXattr
	}
	return getPxarXattr(v.e, req, resp)
}

func (d *pxarDir) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	if v, err := d.current(); err == nil {
		resp.Append(v.e.XattrNames()...)
	}
	return nil
}

// Changes: EROFS, whatever the archived modes say.

func (d *pxarDir) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error { return errArchiveRO }
func (d *pxarDir) Removexattr(ctx context.Context, req *fuse.RemovexattrRequest) error {
	return errArchiveRO
}
func (d *pxarDir) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	return errArchiveRO
}
func (d *pxarDir) Mkdir(ctx context.Context, req *fuse.MkdirRequest) (fusefs.Node, error) {
	return nil, errArchiveRO
}
func (d *pxarDir) Remove(ctx context.Context, req *fuse.RemoveRequest) error { return errArchiveRO }
func (d *pxarDir) Create(ctx context.Context, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	return nil, nil, errArchiveRO
}
func (d *pxarDir) Symlink(ctx context.Context, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	return nil, errArchiveRO
}
func (d *pxarDir) Mknod(ctx context.Context, req *fuse.MknodRequest) (fusefs.Node, error) {
	return nil, errArchiveRO
}
func (d *pxarDir) Link(ctx context.Context, req *fuse.LinkRequest, old fusefs.Node) (fusefs.Node, error) {
	return nil, errArchiveRO
}
func (d *pxarDir) Rename(ctx context.Context, req *fuse.RenameRequest, newDir fusefs.Node) error {
	return errArchiveRO
}

// Access refuses write access (see pxarNode.Access).
func (d *pxarDir) Access(ctx context.Context, req *fuse.AccessRequest) error {
	if req.Mask&accessWrite != 0 {
		return errArchiveRO
	}
	return nil
}
