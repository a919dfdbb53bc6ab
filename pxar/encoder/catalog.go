package encoder

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"pbsfs/pxar"
)

// CatalogMagic is PROXMOX_CATALOG_FILE_MAGIC_1_0, the first 8 bytes of a
// catalog stream (pxar-format.md §11).
var CatalogMagic = [8]byte{145, 253, 96, 249, 196, 103, 88, 213}

// CatalogArchive is one file archive listed in a snapshot's catalog: its
// file name in the snapshot (e.g. "root.pxar.didx") and its tree.
type CatalogArchive struct {
	Name string
	Root *Node
}

// WriteCatalog writes a catalog.pcat1 stream listing the archives, as
// proxmox-backup-client writes it beside v1 archives (pxar-format.md §11):
// one directory block per directory, children before parents, the root
// block with one directory entry per archive, and the root block's offset.
func WriteCatalog(w io.Writer, archives ...CatalogArchive) error {
	cw := &countWriter{bw: bufio.NewWriterSize(w, 64<<10)}
	cw.Write(CatalogMagic[:])
	var top []catalogEntry
	for _, a := range archives {
		if a.Root == nil || a.Root.kind() != pxar.ModeDir {
			return fmt.Errorf("catalog: archive %q: the root must be a directory", a.Name)
		}
		if err := checkName(a.Name); err != nil {
			return fmt.Errorf("catalog: archive: %w", err)
		}
		off, err := catalogDir(cw, a.Root)
		if err != nil {
			return fmt.Errorf("catalog: archive %q: %w", a.Name, err)
		}
		top = append(top, catalogEntry{typ: 'd', name: a.Name, block: off})
	}
	rootStart := cw.n
	catalogBlock(cw, top)
	cw.Write(binary.LittleEndian.AppendUint64(nil, rootStart))
	if cw.err != nil {
		return fmt.Errorf("catalog: write: %w", cw.err)
	}
	if err := cw.bw.Flush(); err != nil {
		return fmt.Errorf("catalog: write: %w", err)
	}
	return nil
}

type catalogEntry struct {
	typ   byte
	name  string
	block uint64 // 'd': offset of the child's block
	size  uint64 // 'f'
	mtime int64  // 'f'
}

// catalogDir writes the blocks of n's subdirectories, then n's own block,
// and returns the offset of n's block.
func catalogDir(cw *countWriter, n *Node) (uint64, error) {
	children, err := n.entries()
	if err != nil {
		return 0, fmt.Errorf("%q: %w", n.Name, err)
	}
	entries := make([]catalogEntry, 0, len(children))
	for _, c := range children {
		if err := checkName(c.Name); err != nil {
			return 0, err
		}
		e := catalogEntry{name: c.Name}
		switch {
		case c.HardlinkTo != nil:
			e.typ = 'h'
		case c.kind() == pxar.ModeDir:
			off, err := catalogDir(cw, c)
			if err != nil {
				return 0, err
			}
			e.typ, e.block = 'd', off
		case c.kind() == pxar.ModeRegular:
			e.typ, e.size, e.mtime = 'f', c.fileSize(), c.MtimeSec
		case c.kind() == pxar.ModeSymlink:
			e.typ = 'l'
		case c.kind() == pxar.ModeBlock:
			e.typ = 'b'
		case c.kind() == pxar.ModeChar:
			e.typ = 'c'
		case c.kind() == pxar.ModeFIFO:
			e.typ = 'p'
		case c.kind() == pxar.ModeSocket:
			e.typ = 's'
		default:
			return 0, fmt.Errorf("%q: unknown file type %#o", c.Name, c.kind())
		}
		entries = append(entries, e)
	}
	start := cw.n
	catalogBlock(cw, entries)
	return start, nil
}

// catalogBlock writes one directory block at the writer's position.
func catalogBlock(cw *countWriter, entries []catalogEntry) {
	start := cw.n
	table := binary.AppendUvarint(nil, uint64(len(entries)))
	for _, e := range entries {
		table = append(table, e.typ)
		table = binary.AppendUvarint(table, uint64(len(e.name)))
		table = append(table, e.name...)
		switch e.typ {
		case 'd':
			table = binary.AppendUvarint(table, start-e.block)
		case 'f':
			table = binary.AppendUvarint(table, e.size)
			table = appendSvarint(table, e.mtime)
		}
	}
	cw.Write(binary.AppendUvarint(nil, uint64(len(table))))
	cw.Write(table)
}

// appendSvarint appends the catalog's signed varint: v ≥ 0 as a plain
// varint; v < 0 as the 7-bit groups of −v, all with bit 7 set, and a final
// 0x00 byte (−2 → 82 00).
func appendSvarint(b []byte, v int64) []byte {
	if v >= 0 {
		return binary.AppendUvarint(b, uint64(v))
	}
	u := uint64(-v) // also right for MinInt64: the two's complement is 1<<63
	for u > 0 {
		b = append(b, byte(u&0x7f)|0x80)
		u >>= 7
	}
	return append(b, 0)
}
