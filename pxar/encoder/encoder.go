package encoder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"pbsfs/pxar"
)

// SplitOptions tune WriteSplit.
type SplitOptions struct {
	// Prelude is written as a PRELUDE item after FORMAT_VERSION when not
	// nil; an empty non-nil slice gives an empty PRELUDE.
	Prelude []byte
	// Reused marks regular files whose payload is treated as re-used from
	// an earlier snapshot, as the client's metadata change-detection mode
	// does: the value (padding, possibly empty) is written to the payload
	// stream before the file's PAYLOAD, and the goodbye table records the
	// file's true metadata size instead of metadata + file size
	// (pxar-format.md §10.2, §10.3).
	Reused map[*Node][]byte
	// TrailingPadding is written to the payload stream before the tail
	// marker.
	TrailingPadding []byte
}

// WriteV1 writes root as a v1 unified archive (a .pxar stream).
func WriteV1(w io.Writer, root *Node) error {
	e := newEncoder(w, nil)
	if err := e.archive(root); err != nil {
		return err
	}
	return e.flush()
}

// WriteSplit writes root as a v2 split archive: the metadata stream (.mpxar)
// to meta and the payload stream (.ppxar) to payload.
func WriteSplit(meta, payload io.Writer, root *Node, opts SplitOptions) error {
	e := newEncoder(meta, payload)
	e.opts = opts
	if err := e.header(e.meta, pxar.TypeFormatVersion, 8); err != nil {
		return err
	}
	if err := e.u64(e.meta, 2); err != nil {
		return err
	}
	if opts.Prelude != nil {
		if err := e.item(e.meta, pxar.TypePrelude, opts.Prelude); err != nil {
			return err
		}
	}
	if err := e.header(e.payload, pxar.TypePayloadStartMarker, 0); err != nil {
		return err
	}
	if err := e.archive(root); err != nil {
		return err
	}
	if _, err := e.payload.Write(opts.TrailingPadding); err != nil {
		return err
	}
	if err := e.header(e.payload, pxar.TypePayloadTailMarker, 0); err != nil {
		return err
	}
	return e.flush()
}

// countWriter buffers writes and counts the bytes written, which gives the
// offsets goodbye tables and hardlinks need without seeking.
type countWriter struct {
	bw  *bufio.Writer
	n   uint64
	err error // first write error; later writes are skipped
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.bw.Write(p)
	c.n += uint64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

type encoder struct {
	meta    *countWriter
	payload *countWriter // nil for v1
	opts    SplitOptions

	targets map[*Node]bool       // nodes some hardlink points to
	placed  map[*Node]linkTarget // those of them already written
	buf     [pxar.HeaderSize + pxar.StatSize]byte
}

type linkTarget struct {
	pos  uint64 // position of the target's FILENAME header
	path string // root-relative path without a leading '/'
}

func newEncoder(meta, payload io.Writer) *encoder {
	e := &encoder{meta: &countWriter{bw: bufio.NewWriterSize(meta, 64<<10)}}
	if payload != nil {
		e.payload = &countWriter{bw: bufio.NewWriterSize(payload, 64<<10)}
	}
	return e
}

func (e *encoder) flush() error {
	for _, c := range []*countWriter{e.meta, e.payload} {
		if c == nil {
			continue
		}
		if c.err != nil {
			return fmt.Errorf("pxar encoder: write: %w", c.err)
		}
		if err := c.bw.Flush(); err != nil {
			return fmt.Errorf("pxar encoder: write: %w", err)
		}
	}
	return nil
}

func (e *encoder) archive(root *Node) error {
	if root == nil || root.kind() != pxar.ModeDir || root.HardlinkTo != nil {
		return errors.New("pxar encoder: the root must be a directory")
	}
	e.targets = make(map[*Node]bool)
	e.placed = make(map[*Node]linkTarget)
	collectTargets(root.Children, e.targets)
	// The root directory's goodbye tail points at offset 0 of the archive,
	// also in v2 where FORMAT_VERSION is there (pxar-format.md §5.14).
	if err := e.entry(root); err != nil {
		return err
	}
	return e.dir(root, "", 0)
}

// collectTargets marks the hardlink targets below the entries cs; it does
// not descend into listed directories (dir collects theirs when it lists
// them).
func collectTargets(cs []*Node, targets map[*Node]bool) {
	for _, c := range cs {
		if c.HardlinkTo != nil {
			targets[c.HardlinkTo] = true
		}
		collectTargets(c.Children, targets)
	}
}

// dir writes the children and the goodbye table of directory n, whose
// ENTRY header is at entryStart (0 for the root).
func (e *encoder) dir(n *Node, path string, entryStart uint64) error {
	children, err := n.entries()
	if err != nil {
		return fmt.Errorf("pxar encoder: /%s: %w", path, err)
	}
	if n.List != nil {
		collectTargets(children, e.targets)
	}
	items := make([]goodbyeItem, 0, len(children))
	for i, c := range children {
		if i > 0 && children[i-1].Name == c.Name {
			return fmt.Errorf("pxar encoder: /%s: duplicate name %q", path, c.Name)
		}
		if err := checkName(c.Name); err != nil {
			return fmt.Errorf("pxar encoder: /%s: %w", path, err)
		}
		cpath := c.Name
		if path != "" {
			cpath = path + "/" + c.Name
		}
		start := e.meta.n
		size, err := e.child(c, cpath)
		if err != nil {
			return err
		}
		items = append(items, goodbyeItem{hash: pxar.HashFilename([]byte(c.Name)), offset: start, size: size})
	}
	gstart := e.meta.n
	gsize := uint64(pxar.HeaderSize + pxar.GoodbyeItemSize*(len(items)+1))
	for i := range items {
		items[i].offset = gstart - items[i].offset
	}
	if err := e.header(e.meta, pxar.TypeGoodbye, gsize-pxar.HeaderSize); err != nil {
		return err
	}
	for _, it := range append(bstOrder(items), goodbyeItem{pxar.GoodbyeTailMarker, gstart - entryStart, gsize}) {
		var b [pxar.GoodbyeItemSize]byte
		binary.LittleEndian.PutUint64(b[0:], it.hash)
		binary.LittleEndian.PutUint64(b[8:], it.offset)
		binary.LittleEndian.PutUint64(b[16:], it.size)
		if _, err := e.meta.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

// child writes one directory entry (FILENAME and the rest) at path and
// returns the size its goodbye item records.
func (e *encoder) child(c *Node, path string) (uint64, error) {
	start := e.meta.n
	if err := e.item(e.meta, pxar.TypeFilename, append([]byte(c.Name), 0)); err != nil {
		return 0, err
	}
	if t := c.HardlinkTo; t != nil {
		lt, ok := e.placed[t]
		if !ok {
			return 0, fmt.Errorf("pxar encoder: /%s: hardlink target is not an earlier regular file", path)
		}
		content := binary.LittleEndian.AppendUint64(nil, start-lt.pos)
		content = append(append(content, lt.path...), 0)
		if err := e.item(e.meta, pxar.TypeHardlink, content); err != nil {
			return 0, err
		}
		return e.meta.n - start, nil
	}
	if e.targets[c] {
		if c.kind() != pxar.ModeRegular {
			return 0, fmt.Errorf("pxar encoder: /%s: hardlink target is not a regular file", path)
		}
		e.placed[c] = linkTarget{pos: start, path: path}
	}
	switch c.kind() {
	case pxar.ModeDir, pxar.ModeRegular, pxar.ModeSymlink, pxar.ModeBlock, pxar.ModeChar, pxar.ModeFIFO, pxar.ModeSocket:
	default:
		return 0, fmt.Errorf("pxar encoder: /%s: unknown file type in mode %#o", path, c.Mode)
	}
	entryStart := e.meta.n
	if err := e.entry(c); err != nil {
		return 0, fmt.Errorf("pxar encoder: /%s: %w", path, err)
	}
	extra := uint64(0)
	switch c.kind() {
	case pxar.ModeDir:
		if err := e.dir(c, path, entryStart); err != nil {
			return 0, err
		}
	case pxar.ModeRegular:
		var err error
		if extra, err = e.contents(c); err != nil {
			return 0, fmt.Errorf("pxar encoder: /%s: %w", path, err)
		}
	case pxar.ModeSymlink:
		if c.Symlink == "" || len(c.Symlink) > pxar.MaxPathLen {
			return 0, fmt.Errorf("pxar encoder: /%s: symlink target of %d bytes", path, len(c.Symlink))
		}
		if err := e.item(e.meta, pxar.TypeSymlink, append([]byte(c.Symlink), 0)); err != nil {
			return 0, err
		}
	case pxar.ModeBlock, pxar.ModeChar:
		var b [pxar.DeviceSize]byte
		binary.LittleEndian.PutUint64(b[0:], c.RdevMajor)
		binary.LittleEndian.PutUint64(b[8:], c.RdevMinor)
		if err := e.item(e.meta, pxar.TypeDevice, b[:]); err != nil {
			return 0, err
		}
	case pxar.ModeFIFO, pxar.ModeSocket:
		// nothing follows the attributes
	}
	if c.kind() != pxar.ModeDir && (len(c.Children) > 0 || c.List != nil) {
		return 0, fmt.Errorf("pxar encoder: /%s: children of a non-directory", path)
	}
	return e.meta.n - start + extra, nil
}

// contents writes a regular file's bytes: a PAYLOAD item in v1; in v2 a
// PAYLOAD in the payload stream and a PAYLOAD_REF here. It returns what
// the goodbye size adds to the metadata size (the file size for files
// written fresh into a split archive, §10.3).
func (e *encoder) contents(c *Node) (uint64, error) {
	size := c.fileSize()
	if c.Open == nil && c.Size != 0 && c.Size != size {
		return 0, fmt.Errorf("size %d but %d data bytes", c.Size, size)
	}
	out := e.meta
	extra := uint64(0)
	if e.payload != nil {
		out = e.payload
		pad, reused := e.opts.Reused[c]
		if !reused {
			extra = size
		}
		if _, err := out.Write(pad); err != nil {
			return 0, err
		}
		var ref [pxar.PayloadRefSize]byte
		binary.LittleEndian.PutUint64(ref[0:], out.n)
		binary.LittleEndian.PutUint64(ref[8:], size)
		if err := e.item(e.meta, pxar.TypePayloadRef, ref[:]); err != nil {
			return 0, err
		}
	}
	if err := e.header(out, pxar.TypePayload, size); err != nil {
		return 0, err
	}
	if c.Open == nil {
		_, err := out.Write(c.Data)
		return extra, err
	}
	r, err := c.Open()
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer r.Close()
	n, err := io.CopyN(out, r, int64(size))
	if err != nil {
		if out.err != nil {
			return 0, out.err
		}
		return 0, fmt.Errorf("read: %d of %d bytes: %w", n, size, err)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return 0, fmt.Errorf("file is longer than its size %d", size)
	}
	return extra, nil
}

// entry writes ENTRY and the attribute items in the order of the encoder
// of the pxar crate (pxar-format.md §4).
func (e *encoder) entry(n *Node) error {
	if n.MtimeNsec >= 1e9 {
		return fmt.Errorf("mtime nanoseconds %d out of range", n.MtimeNsec)
	}
	b := e.buf[:]
	le := binary.LittleEndian
	le.PutUint64(b[0:], pxar.TypeEntry)
	le.PutUint64(b[8:], pxar.HeaderSize+pxar.StatSize)
	le.PutUint64(b[16:], n.Mode)
	le.PutUint64(b[24:], n.Flags)
	le.PutUint32(b[32:], n.UID)
	le.PutUint32(b[36:], n.GID)
	le.PutUint64(b[40:], uint64(n.MtimeSec))
	le.PutUint32(b[48:], n.MtimeNsec)
	le.PutUint32(b[52:], 0)
	if _, err := e.meta.Write(b); err != nil {
		return err
	}
	for _, x := range n.Xattrs {
		if x.Name == "" || strings.IndexByte(x.Name, 0) >= 0 || len(x.Name)+1+len(x.Value) > pxar.MaxXattrLen {
			return fmt.Errorf("bad xattr %q (%d value bytes)", x.Name, len(x.Value))
		}
		content := append(append([]byte(x.Name), 0), x.Value...)
		if err := e.item(e.meta, pxar.TypeXattr, content); err != nil {
			return err
		}
	}
	a := &n.ACL
	if err := e.aclEntries(pxar.TypeACLUser, a.Users); err != nil {
		return err
	}
	if err := e.aclEntries(pxar.TypeACLGroup, a.Groups); err != nil {
		return err
	}
	if a.GroupObj != nil {
		if err := e.item(e.meta, pxar.TypeACLGroupObj, le.AppendUint64(nil, *a.GroupObj)); err != nil {
			return err
		}
	}
	if d := a.Default; d != nil {
		var c []byte
		for _, v := range []uint64{d.UserObj, d.GroupObj, d.Other, d.Mask} {
			c = le.AppendUint64(c, v)
		}
		if err := e.item(e.meta, pxar.TypeACLDefault, c); err != nil {
			return err
		}
	}
	if err := e.aclEntries(pxar.TypeACLDefaultUser, a.DefaultUsers); err != nil {
		return err
	}
	if err := e.aclEntries(pxar.TypeACLDefaultGroup, a.DefaultGroups); err != nil {
		return err
	}
	if n.FCaps != nil {
		if len(n.FCaps) > pxar.MaxXattrLen {
			return fmt.Errorf("fcaps of %d bytes", len(n.FCaps))
		}
		if err := e.item(e.meta, pxar.TypeFCaps, n.FCaps); err != nil {
			return err
		}
	}
	if n.ProjID != nil {
		if err := e.item(e.meta, pxar.TypeQuotaProjID, le.AppendUint64(nil, *n.ProjID)); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) aclEntries(htype uint64, entries []ACLEntry) error {
	for _, a := range entries {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[0:], a.ID)
		binary.LittleEndian.PutUint64(b[8:], a.Perm)
		if err := e.item(e.meta, htype, b[:]); err != nil {
			return err
		}
	}
	return nil
}

// header writes an item header for content of the given size.
func (e *encoder) header(w *countWriter, htype, contentSize uint64) error {
	var b [pxar.HeaderSize]byte
	binary.LittleEndian.PutUint64(b[0:], htype)
	binary.LittleEndian.PutUint64(b[8:], pxar.HeaderSize+contentSize)
	_, err := w.Write(b[:])
	return err
}

func (e *encoder) item(w *countWriter, htype uint64, content []byte) error {
	if err := e.header(w, htype, uint64(len(content))); err != nil {
		return err
	}
	_, err := w.Write(content)
	return err
}

func (e *encoder) u64(w *countWriter, v uint64) error {
	_, err := w.Write(binary.LittleEndian.AppendUint64(nil, v))
	return err
}

// checkName refuses names pxar readers reject (pxar-format.md §5.4).
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("invalid file name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL", name)
	case len(name) > pxar.MaxNameLen:
		return fmt.Errorf("file name of %d bytes", len(name))
	}
	return nil
}
