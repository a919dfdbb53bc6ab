package pxar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// readWindow is how much a cursor reads ahead: most items are small and
// follow each other, so one ReadAt usually serves several of them.
const readWindow = 8 << 10

// cursor reads a stream through a small window buffer. Nothing at or beyond
// limit is ever read. Slices it returns are valid until its next call.
type cursor struct {
	r      io.ReaderAt
	stream string
	limit  uint64
	buf    []byte
	bufOff uint64
}

// bufPool recycles cursor windows: a listing or lookup needs one for the
// duration of the call only (decoded entries copy what they keep).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, readWindow); return &b }}

func newCursor(r io.ReaderAt, stream string, limit uint64) *cursor {
	return &cursor{r: r, stream: stream, limit: limit, buf: (*(bufPool.Get().(*[]byte)))[:0]}
}

// release returns the window to the pool; the cursor must not be used
// afterwards. Windows grown for a large item are left to the collector.
func (c *cursor) release() {
	if cap(c.buf) <= 4*readWindow {
		b := c.buf[:0]
		bufPool.Put(&b)
	}
	c.buf = nil
}

// at returns the n bytes at off, reading a window from off if they are not
// buffered.
func (c *cursor) at(off, n uint64) ([]byte, error) {
	if n > c.limit || off > c.limit-n {
		return nil, corruptf(c.stream, off, "%d bytes needed, stream or range ends at %d", n, c.limit)
	}
	if off >= c.bufOff && off+n <= c.bufOff+uint64(len(c.buf)) {
		return c.buf[off-c.bufOff : off-c.bufOff+n], nil
	}
	want := max(n, min(readWindow, c.limit-off))
	return c.fill(off, want, n)
}

// fill reads [off, off+want) into the buffer and returns its first n bytes.
func (c *cursor) fill(off, want, n uint64) ([]byte, error) {
	if uint64(cap(c.buf)) < want {
		c.buf = make([]byte, want)
	}
	c.buf = c.buf[:want]
	c.bufOff = off
	got, err := c.r.ReadAt(c.buf, int64(off))
	if uint64(got) < want {
		c.buf = c.buf[:got]
		if uint64(got) >= n {
			return c.buf[:n], nil
		}
		c.buf = c.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			return nil, corruptf(c.stream, off+uint64(got), "stream ends early (its size says %d)", c.limit)
		}
		return nil, fmt.Errorf("pxar: read %s stream at %d: %w", c.stream, off, err)
	}
	return c.buf[:n], nil
}

// tail reads the n bytes ending at end, together with up to readWindow
// bytes before them (not before floor), so that a small goodbye table and
// its header arrive in one read.
func (c *cursor) tail(end, n, floor uint64) ([]byte, error) {
	if end > c.limit || n > end {
		return nil, corruptf(c.stream, end, "%d bytes needed before %d", n, end)
	}
	start := end - n
	if back := end - floor; end >= floor && back > n {
		start = end - min(back, max(n, readWindow))
	}
	if _, err := c.fill(start, end-start, end-start); err != nil {
		return nil, err
	}
	return c.buf[end-n-start:], nil
}

// header reads the item header at off and checks it against the type's
// content limit and against bound (the end of the enclosing range).
func (c *cursor) header(off, bound uint64) (htype, size uint64, err error) {
	if bound < HeaderSize || off > bound-HeaderSize {
		return 0, 0, corruptf(c.stream, off, "item header crosses the end of its range (%d)", bound)
	}
	b, err := c.at(off, HeaderSize)
	if err != nil {
		return 0, 0, err
	}
	htype = binary.LittleEndian.Uint64(b)
	size = binary.LittleEndian.Uint64(b[8:])
	if size < HeaderSize {
		return 0, 0, corruptf(c.stream, off, "item %#016x has size %d < 16", htype, size)
	}
	if size-HeaderSize > maxContent(htype) {
		return 0, 0, corruptf(c.stream, off, "item %s has %d content bytes, at most %d allowed", typeName(htype), size-HeaderSize, maxContent(htype))
	}
	if size > bound-off {
		return 0, 0, corruptf(c.stream, off, "item %s of %d bytes crosses the end of its range (%d)", typeName(htype), size, bound)
	}
	return htype, size, nil
}

// maxContent is the reference decoder's content limit per item type
// (pxar-format.md §2).
func maxContent(htype uint64) uint64 {
	switch htype {
	case TypeFilename, TypeSymlink:
		return MaxPathLen + 1
	case TypeHardlink:
		return 8 + MaxPathLen + 1
	case TypeDevice:
		return DeviceSize
	case TypeXattr, TypeFCaps:
		return MaxXattrLen
	case TypeACLUser, TypeACLDefaultUser, TypeACLGroup, TypeACLDefaultGroup:
		return 16
	case TypeACLDefault:
		return 32
	case TypeACLGroupObj, TypeQuotaProjID:
		return 8
	case TypeEntry:
		return StatSize
	case TypePayloadRef:
		return PayloadRefSize
	case TypePayloadTailMarker:
		return 16
	}
	return ^uint64(0)
}

func typeName(htype uint64) string {
	switch htype {
	case TypeFormatVersion:
		return "FORMAT_VERSION"
	case TypeEntry:
		return "ENTRY"
	case TypeEntryV1:
		return "ENTRY_V1"
	case TypePrelude:
		return "PRELUDE"
	case TypeFilename:
		return "FILENAME"
	case TypeSymlink:
		return "SYMLINK"
	case TypeDevice:
		return "DEVICE"
	case TypeXattr:
		return "XATTR"
	case TypeACLUser:
		return "ACL_USER"
	case TypeACLGroup:
		return "ACL_GROUP"
	case TypeACLGroupObj:
		return "ACL_GROUP_OBJ"
	case TypeACLDefault:
		return "ACL_DEFAULT"
	case TypeACLDefaultUser:
		return "ACL_DEFAULT_USER"
	case TypeACLDefaultGroup:
		return "ACL_DEFAULT_GROUP"
	case TypeFCaps:
		return "FCAPS"
	case TypeQuotaProjID:
		return "QUOTA_PROJID"
	case TypeHardlink:
		return "HARDLINK"
	case TypePayload:
		return "PAYLOAD"
	case TypePayloadRef:
		return "PAYLOAD_REF"
	case TypeGoodbye:
		return "GOODBYE"
	case TypePayloadStartMarker:
		return "PAYLOAD_START_MARKER"
	case TypePayloadTailMarker:
		return "PAYLOAD_TAIL_MARKER"
	}
	return fmt.Sprintf("%#016x", htype)
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
