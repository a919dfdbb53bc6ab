package pxar

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// segReader is an io.ReaderAt over a list of segments: literal bytes or
// runs of zeros. It stands in for the 100 MiB payload stream of the real
// split fixtures without holding it in memory.
type segReader struct {
	segs  []segment
	start []int64
	size  int64
}

type segment struct {
	data  []byte
	zeros int64
}

func (s *segReader) add(seg segment) {
	s.start = append(s.start, s.size)
	s.segs = append(s.segs, seg)
	if seg.data != nil {
		s.size += int64(len(seg.data))
	} else {
		s.size += seg.zeros
	}
}

func (s *segReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= s.size {
			return n, io.EOF
		}
		i := sort.Search(len(s.start), func(i int) bool { return s.start[i] > off }) - 1
		seg, in := s.segs[i], off-s.start[i]
		var k int
		if seg.data != nil {
			k = copy(p, seg.data[in:])
		} else {
			k = int(min(int64(len(p)), seg.zeros-in))
			clear(p[:k])
		}
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

func header(htype, size uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, htype)
	return binary.LittleEndian.AppendUint64(b, size)
}

// dataPayload rebuilds the payload stream of backup-client-pxar-data.mpxar
// as SOURCE.txt describes: start marker, 100 × (PAYLOAD header + 1 MiB of
// zeros), tail marker. With reuse it is the stream of
// backup-client-pxar-expected.mpxar instead (§10.2): a new start marker,
// the old stream as injected chunks, a new tail marker.
func dataPayload(reuse bool) *segReader {
	s := &segReader{}
	if reuse {
		s.add(segment{data: header(TypePayloadStartMarker, 16)})
	}
	s.add(segment{data: header(TypePayloadStartMarker, 16)})
	for range 100 {
		s.add(segment{data: header(TypePayload, 16+1<<20)})
		s.add(segment{zeros: 1 << 20})
	}
	s.add(segment{data: header(TypePayloadTailMarker, 16)})
	if reuse {
		s.add(segment{data: header(TypePayloadTailMarker, 16)})
	}
	return s
}

// dataPayloadSHA256 is the sha256 SOURCE.txt gives for the rebuilt stream.
const dataPayloadSHA256 = "6eb275c1ef20d662d518a46b1c8a309fa83d72fafd1ef8ddcaabadfa415bf84a"

type fixture struct {
	name    string // base name in testdata
	meta    string
	payload func(t testing.TB) (io.ReaderAt, int64)
}

func fileReader(path string) func(t testing.TB) (io.ReaderAt, int64) {
	return func(t testing.TB) (io.ReaderAt, int64) {
		b, err := os.ReadFile(filepath.Join("testdata", path))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(b), int64(len(b))
	}
}

var fixtures = []fixture{
	{name: "pxar-crate-v1", meta: "pxar-crate-v1.pxar"},
	{name: "pxar-crate-v2", meta: "pxar-crate-v2.mpxar", payload: fileReader("pxar-crate-v2.ppxar")},
	{name: "backup-client-pxar-data", meta: "backup-client-pxar-data.mpxar", payload: func(testing.TB) (io.ReaderAt, int64) {
		s := dataPayload(false)
		return s, s.size
	}},
	{name: "backup-client-pxar-expected", meta: "backup-client-pxar-expected.mpxar", payload: func(testing.TB) (io.ReaderAt, int64) {
		s := dataPayload(true)
		return s, s.size
	}},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openFixture(t testing.TB, f fixture, opts Options) (*Archive, []byte) {
	t.Helper()
	meta := readTestdata(t, f.meta)
	var p io.ReaderAt
	var psize int64
	if f.payload != nil {
		p, psize = f.payload(t)
	}
	a, err := Open(bytes.NewReader(meta), int64(len(meta)), p, psize, opts)
	if err != nil {
		t.Fatalf("%s: Open: %v", f.name, err)
	}
	return a, meta
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// quote writes s in the appendix's quoting: printable bytes as they are,
// control bytes, '"' and '\' as \xNN.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func permString(p uint64) string {
	b := []byte("---")
	if p&ACLRead != 0 {
		b[0] = 'r'
	}
	if p&ACLWrite != 0 {
		b[1] = 'w'
	}
	if p&ACLExecute != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// formatEntry renders e in the format of pxar-format.md appendix A.
func formatEntry(path string, e *Entry) string {
	if e.Hardlink {
		return fmt.Sprintf("h ---- -/- - - %s => %s (link offset %d)", path, quote(e.HardlinkPath), e.linkOffset)
	}
	typ := map[Kind]string{KindDir: "d", KindFile: "-", KindSymlink: "l", KindBlockDev: "b", KindCharDev: "c", KindFIFO: "p", KindSocket: "s"}[e.Kind]
	size := "-"
	switch e.Kind {
	case KindFile:
		size = fmt.Sprint(e.Size)
	case KindBlockDev, KindCharDev:
		size = fmt.Sprintf("%d,%d", e.RdevMajor, e.RdevMinor)
	}
	mtime := time.Unix(e.MtimeSec, int64(e.MtimeNsec)).UTC().Format("2006-01-02T15:04:05.000000000Z")
	s := fmt.Sprintf("%s %04o %d/%d %s %s %s", typ, e.Mode&0o7777, e.UID, e.GID, mtime, size, path)
	if e.Kind == KindSymlink {
		s += " -> " + quote(e.LinkTarget)
	}
	if e.data != nil && e.data.split {
		s += fmt.Sprintf(" @payload:%d", e.data.ref)
	}
	var attrs []string
	for _, x := range e.Xattrs {
		attrs = append(attrs, "xattr:"+quote(x.Name)+"="+quote(x.Value))
	}
	for _, u := range e.ACL.Users {
		attrs = append(attrs, fmt.Sprintf("acl:user:%d:%s", u.ID, permString(u.Perm)))
	}
	for _, g := range e.ACL.Groups {
		attrs = append(attrs, fmt.Sprintf("acl:group:%d:%s", g.ID, permString(g.Perm)))
	}
	if e.ACL.GroupObj != nil {
		attrs = append(attrs, "acl:group_obj:"+permString(*e.ACL.GroupObj))
	}
	if d := e.ACL.Default; d != nil {
		mask := "NO_MASK"
		if d.Mask != ACLNoMask {
			mask = permString(d.Mask)
		}
		attrs = append(attrs, fmt.Sprintf("acl:default:%s,%s,%s,%s", permString(d.UserObj), permString(d.GroupObj), permString(d.Other), mask))
	}
	for _, u := range e.ACL.DefaultUsers {
		attrs = append(attrs, fmt.Sprintf("acl:default:user:%d:%s", u.ID, permString(u.Perm)))
	}
	for _, g := range e.ACL.DefaultGroups {
		attrs = append(attrs, fmt.Sprintf("acl:default:group:%d:%s", g.ID, permString(g.Perm)))
	}
	if e.FCaps != nil {
		attrs = append(attrs, "fcaps:"+hex.EncodeToString(e.FCaps))
	}
	if e.ProjID != nil {
		attrs = append(attrs, fmt.Sprintf("projid:%d", *e.ProjID))
	}
	if len(attrs) > 0 {
		s += " [" + strings.Join(attrs, " ") + "]"
	}
	return s
}

type walked struct {
	path string
	e    *Entry
}

func childPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// treeWalk lists the archive depth-first through ReadDir.
func treeWalk(a *Archive) ([]walked, error) {
	root, err := a.Root()
	if err != nil {
		return nil, err
	}
	out := []walked{{"/", root}}
	var walk func(path string, dir *Entry) error
	walk = func(path string, dir *Entry) error {
		kids, err := a.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, k := range kids {
			p := childPath(path, k.Name)
			out = append(out, walked{p, k})
			if k.Kind == KindDir {
				if err := walk(p, k); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk("/", root)
}

// seqWalk decodes the archive sequentially from its first byte to its
// last, as an extractor would (pxar-format.md §6), without goodbye tables.
func seqWalk(a *Archive) ([]walked, error) {
	c := newCursor(a.meta, streamMeta, a.metaSize)
	root := *a.root
	out := []walked{{"/", &root}}
	var walkDir func(path string, pos uint64) (uint64, error)
	walkDir = func(path string, pos uint64) (uint64, error) {
		for {
			ht, size, err := c.header(pos, a.metaSize)
			if err != nil {
				return 0, err
			}
			if ht == TypeGoodbye {
				return pos + size, nil
			}
			name, p, err := a.readFilename(c, pos, a.metaSize)
			if err != nil {
				return 0, err
			}
			ht, size, err = c.header(p, a.metaSize)
			if err != nil {
				return 0, err
			}
			if ht == TypeHardlink {
				e, err := a.resolveHardlink(c, pos, p, size)
				if err != nil {
					return 0, err
				}
				e.Name = name
				out = append(out, walked{childPath(path, name), e})
				pos = p + size
				continue
			}
			e, end, err := a.decodeEntry(c, p, a.metaSize)
			if err != nil {
				return 0, err
			}
			e.Name = name
			cp := childPath(path, name)
			out = append(out, walked{cp, e})
			if e.Kind == KindDir {
				if end, err = walkDir(cp, e.bodyStart); err != nil {
					return 0, err
				}
				e.end, e.tailRef = end, e.entryStart
			}
			pos = end
		}
	}
	end, err := walkDir("/", root.bodyStart)
	if err != nil {
		return nil, err
	}
	if end != a.metaSize {
		return nil, fmt.Errorf("root goodbye ends at %d, archive at %d", end, a.metaSize)
	}
	return out, nil
}

// lookupPath resolves an absolute path component by component.
func lookupPath(a *Archive, path string) (*Entry, error) {
	e, err := a.Root()
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if name == "" {
			continue
		}
		if e, err = a.Lookup(e, name); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// readAll reads a file through ReadAt in bufSize pieces.
func readAll(a *Archive, e *Entry, bufSize int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufSize)
	for off := int64(0); ; {
		n, err := a.ReadAt(e, buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
