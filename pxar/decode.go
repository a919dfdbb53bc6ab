package pxar

import (
	"bytes"
	"errors"
)

// decodeEntry decodes ENTRY, its attributes and the item that ends it,
// starting at pos; nothing at or beyond bound belongs to it. It returns the
// entry and the offset just past its last item.
func (a *Archive) decodeEntry(c *cursor, pos, bound uint64) (*Entry, uint64, error) {
	ht, size, err := c.header(pos, bound)
	if err != nil {
		return nil, 0, err
	}
	e := &Entry{entryStart: pos, ID: pos + 1}
	switch ht {
	case TypeEntry:
		if size != HeaderSize+StatSize {
			return nil, 0, corruptf(streamMeta, pos, "ENTRY of %d bytes, want %d", size, HeaderSize+StatSize)
		}
		b, err := c.at(pos+HeaderSize, StatSize)
		if err != nil {
			return nil, 0, err
		}
		e.Mode, e.Flags = le64(b), le64(b[8:])
		e.UID, e.GID = le32(b[16:]), le32(b[20:])
		e.MtimeSec, e.MtimeNsec = int64(le64(b[24:])), le32(b[32:])
		if e.MtimeNsec >= 1e9 {
			return nil, 0, corruptf(streamMeta, pos, "mtime nanoseconds %d out of range", e.MtimeNsec)
		}
	case TypeEntryV1:
		if size != HeaderSize+StatV1Size {
			return nil, 0, corruptf(streamMeta, pos, "ENTRY_V1 of %d bytes, want %d", size, HeaderSize+StatV1Size)
		}
		b, err := c.at(pos+HeaderSize, StatV1Size)
		if err != nil {
			return nil, 0, err
		}
		e.Mode, e.Flags = le64(b), le64(b[8:])
		e.UID, e.GID = le32(b[16:]), le32(b[20:])
		ns := le64(b[24:])
		e.MtimeSec, e.MtimeNsec = int64(ns/1e9), uint32(ns%1e9)
	default:
		return nil, 0, corruptf(streamMeta, pos, "expected ENTRY, found %s", typeName(ht))
	}
	switch e.Mode & ModeTypeMask {
	case ModeDir, ModeRegular, ModeSymlink, ModeBlock, ModeChar, ModeFIFO, ModeSocket:
	default:
		return nil, 0, corruptf(streamMeta, pos, "ENTRY mode %#o has no valid file type", e.Mode)
	}

	p := pos + size
	for {
		if p == bound {
			return e, p, a.finishBare(e, p)
		}
		ht, size, err := c.header(p, bound)
		if err != nil {
			return nil, 0, err
		}
		switch ht {
		case TypeFilename, TypeGoodbye:
			return e, p, a.finishBare(e, p)
		case TypePayload, TypePayloadRef, TypeSymlink, TypeDevice:
			return e, p + size, a.finishKind(c, e, p, ht, size)
		}
		if err := a.decodeAttr(c, e, p, ht, size); err != nil {
			return nil, 0, err
		}
		p += size
	}
}

// finishBare ends an entry that has no content item: a directory (whose
// body starts at p), a FIFO or a socket.
func (a *Archive) finishBare(e *Entry, p uint64) error {
	switch e.Mode & ModeTypeMask {
	case ModeDir:
		e.Kind, e.bodyStart = KindDir, p
	case ModeFIFO:
		e.Kind = KindFIFO
	case ModeSocket:
		e.Kind = KindSocket
	default:
		return corruptf(streamMeta, e.entryStart, "entry of mode %#o has no content item", e.Mode)
	}
	return nil
}

// finishKind ends an entry with its PAYLOAD, PAYLOAD_REF, SYMLINK or DEVICE
// item at p.
func (a *Archive) finishKind(c *cursor, e *Entry, p, ht, size uint64) error {
	ftype := e.Mode & ModeTypeMask
	content := size - HeaderSize
	switch ht {
	case TypePayload:
		if ftype != ModeRegular {
			return corruptf(streamMeta, p, "PAYLOAD for an entry of mode %#o", e.Mode)
		}
		if a.version != 1 {
			return corruptf(streamMeta, p, "PAYLOAD in a split metadata archive")
		}
		e.Kind, e.Size = KindFile, content
		e.data = &payloadLoc{off: p + HeaderSize}
	case TypePayloadRef:
		if ftype != ModeRegular {
			return corruptf(streamMeta, p, "PAYLOAD_REF for an entry of mode %#o", e.Mode)
		}
		if a.version != 2 {
			return corruptf(streamMeta, p, "PAYLOAD_REF in a v1 archive")
		}
		if content != PayloadRefSize {
			return corruptf(streamMeta, p, "PAYLOAD_REF of %d bytes", size)
		}
		b, err := c.at(p+HeaderSize, PayloadRefSize)
		if err != nil {
			return err
		}
		ref, n := le64(b), le64(b[8:])
		if ref < HeaderSize {
			return corruptf(streamMeta, p, "PAYLOAD_REF offset %d inside the payload start marker", ref)
		}
		if a.payload != nil && (ref > a.payloadSize || a.payloadSize-ref < HeaderSize || n > a.payloadSize-ref-HeaderSize) {
			return corruptf(streamMeta, p, "PAYLOAD_REF [%d, +16+%d) beyond the payload stream (%d bytes)", ref, n, a.payloadSize)
		}
		e.Kind, e.Size = KindFile, n
		e.data = &payloadLoc{split: true, ref: ref, off: ref + HeaderSize}
	case TypeSymlink:
		if ftype != ModeSymlink {
			return corruptf(streamMeta, p, "SYMLINK for an entry of mode %#o", e.Mode)
		}
		b, err := c.at(p+HeaderSize, content)
		if err != nil {
			return err
		}
		target, err := cString(b, p, "symlink target")
		if err != nil {
			return err
		}
		e.Kind, e.LinkTarget, e.Size = KindSymlink, string(target), uint64(len(target))
	case TypeDevice:
		switch ftype {
		case ModeBlock:
			e.Kind = KindBlockDev
		case ModeChar:
			e.Kind = KindCharDev
		default:
			return corruptf(streamMeta, p, "DEVICE for an entry of mode %#o", e.Mode)
		}
		if content != DeviceSize {
			return corruptf(streamMeta, p, "DEVICE of %d bytes", size)
		}
		b, err := c.at(p+HeaderSize, DeviceSize)
		if err != nil {
			return err
		}
		e.RdevMajor, e.RdevMinor = le64(b), le64(b[8:])
	}
	return nil
}

// decodeAttr decodes one attribute item (XATTR, ACL_*, FCAPS,
// QUOTA_PROJID) into e.
func (a *Archive) decodeAttr(c *cursor, e *Entry, p, ht, size uint64) error {
	content := size - HeaderSize
	switch ht {
	case TypeXattr, TypeFCaps:
	default:
		w, ok := fixedAttrSize(ht)
		if !ok {
			return corruptf(streamMeta, p, "unexpected item %s in an entry", typeName(ht))
		}
		if content != w {
			return corruptf(streamMeta, p, "%s of %d content bytes, want %d", typeName(ht), content, w)
		}
	}
	b, err := c.at(p+HeaderSize, content)
	if err != nil {
		return err
	}
	dup := func() error { return corruptf(streamMeta, p, "second %s item", typeName(ht)) }
	switch ht {
	case TypeXattr:
		i := bytes.IndexByte(b, 0)
		if i <= 0 || i > 255 {
			return corruptf(streamMeta, p, "XATTR without a valid name")
		}
		e.Xattrs = append(e.Xattrs, Xattr{Name: string(b[:i]), Value: string(b[i+1:])})
	case TypeFCaps:
		if e.FCaps != nil {
			return dup()
		}
		e.FCaps = append(make([]byte, 0, len(b)), b...)
	case TypeACLUser:
		e.ACL.Users = append(e.ACL.Users, ACLEntry{ID: le64(b), Perm: le64(b[8:])})
	case TypeACLGroup:
		e.ACL.Groups = append(e.ACL.Groups, ACLEntry{ID: le64(b), Perm: le64(b[8:])})
	case TypeACLDefaultUser:
		e.ACL.DefaultUsers = append(e.ACL.DefaultUsers, ACLEntry{ID: le64(b), Perm: le64(b[8:])})
	case TypeACLDefaultGroup:
		e.ACL.DefaultGroups = append(e.ACL.DefaultGroups, ACLEntry{ID: le64(b), Perm: le64(b[8:])})
	case TypeACLGroupObj:
		if e.ACL.GroupObj != nil {
			return dup()
		}
		v := le64(b)
		e.ACL.GroupObj = &v
	case TypeACLDefault:
		if e.ACL.Default != nil {
			return dup()
		}
		e.ACL.Default = &ACLDefault{UserObj: le64(b), GroupObj: le64(b[8:]), Other: le64(b[16:]), Mask: le64(b[24:])}
	case TypeQuotaProjID:
		if e.ProjID != nil {
			return dup()
		}
		v := le64(b)
		e.ProjID = &v
	}
	return nil
}

// cString returns b without its terminating NUL; b must end with the only
// NUL it contains.
func cString(b []byte, off uint64, what string) ([]byte, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, corruptf(streamMeta, off, "%s not NUL-terminated", what)
	}
	b = b[:len(b)-1]
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, corruptf(streamMeta, off, "%s contains a NUL byte", what)
	}
	return b, nil
}

// readFilename reads and validates the FILENAME item at pos. It returns the
// name and the offset just past the item.
func (a *Archive) readFilename(c *cursor, pos, bound uint64) (string, uint64, error) {
	ht, size, err := c.header(pos, bound)
	if err != nil {
		return "", 0, err
	}
	if ht != TypeFilename {
		return "", 0, corruptf(streamMeta, pos, "expected FILENAME, found %s", typeName(ht))
	}
	b, err := c.at(pos+HeaderSize, size-HeaderSize)
	if err != nil {
		return "", 0, err
	}
	name, err := cString(b, pos, "file name")
	if err != nil {
		return "", 0, err
	}
	if !validName(name) {
		return "", 0, corruptf(streamMeta, pos, "invalid file name %q", name)
	}
	return string(name), pos + size, nil
}

// validName: non-empty, at most MaxNameLen bytes, no '/' or NUL, not "."
// or "..".
func validName[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	if string(name) == "." || string(name) == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return false
		}
	}
	return true
}

// decodeChild decodes the child whose FILENAME is at fileStart; bound is
// the end of the range the child may occupy. It returns the entry and the
// end of its metadata (for a directory: of its GOODBYE).
func (a *Archive) decodeChild(c *cursor, fileStart, bound uint64) (*Entry, uint64, error) {
	name, p, err := a.readFilename(c, fileStart, bound)
	if err != nil {
		return nil, 0, err
	}
	ht, size, err := c.header(p, bound)
	if err != nil {
		return nil, 0, err
	}
	if ht == TypeHardlink {
		e, err := a.resolveHardlink(c, fileStart, p, size)
		if err != nil {
			return nil, 0, err
		}
		e.Name = name
		return e, p + size, nil
	}
	e, end, err := a.decodeEntry(c, p, bound)
	if err != nil {
		return nil, 0, err
	}
	e.Name = name
	if e.Kind == KindDir {
		// A directory's range ends with its GOODBYE: its end is the bound
		// the goodbye table gave.
		e.end, e.tailRef = bound, e.entryStart
		end = bound
	}
	return e, end, nil
}

// resolveHardlink decodes the HARDLINK item at p (of a link whose FILENAME
// is at linkStart) and returns a copy of its target entry. The target must
// precede the link and be neither a hardlink nor a directory.
func (a *Archive) resolveHardlink(c *cursor, linkStart, p, size uint64) (*Entry, error) {
	if size < HeaderSize+8+1 {
		return nil, corruptf(streamMeta, p, "HARDLINK of %d bytes", size)
	}
	b, err := c.at(p+HeaderSize, size-HeaderSize)
	if err != nil {
		return nil, err
	}
	off := le64(b)
	path, err := cString(b[8:], p, "hardlink target path")
	if err != nil {
		return nil, err
	}
	pathStr := string(path)
	if off == 0 || off > linkStart || linkStart-off < a.root.bodyStart {
		return nil, corruptf(streamMeta, p, "hardlink offset %d does not point back into the archive", off)
	}
	target := linkStart - off
	_, q, err := a.readFilename(c, target, linkStart)
	if err != nil {
		return nil, fmtHardlinkErr(p, err)
	}
	ht, _, err := c.header(q, linkStart)
	if err != nil {
		return nil, fmtHardlinkErr(p, err)
	}
	if ht == TypeHardlink {
		return nil, corruptf(streamMeta, p, "hardlink to a hardlink at %d", target)
	}
	t, _, err := a.decodeEntry(c, q, linkStart)
	if err != nil {
		return nil, fmtHardlinkErr(p, err)
	}
	if t.Kind == KindDir {
		return nil, corruptf(streamMeta, p, "hardlink to a directory at %d", target)
	}
	t.Hardlink, t.HardlinkPath, t.linkOffset = true, pathStr, off
	return t, nil
}

// fmtHardlinkErr names the HARDLINK item in a format error about its
// target; read errors pass through.
func fmtHardlinkErr(p uint64, err error) error {
	if !errors.Is(err, ErrCorrupt) {
		return err
	}
	return corruptf(streamMeta, p, "hardlink target: %v", err)
}

// fixedAttrSize is the content size of the fixed-size attribute items.
func fixedAttrSize(ht uint64) (uint64, bool) {
	switch ht {
	case TypeACLUser, TypeACLGroup, TypeACLDefaultUser, TypeACLDefaultGroup:
		return 16, true
	case TypeACLGroupObj, TypeQuotaProjID:
		return 8, true
	case TypeACLDefault:
		return 32, true
	}
	return 0, false
}
