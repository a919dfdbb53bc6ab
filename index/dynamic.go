package index

import (
	"crypto/sha256"
	"encoding/binary"
)

const kindDynamic = "dynamic"

// DynamicEntry is one .didx entry: the exclusive end offset of the chunk in
// the stream (cumulative) and the chunk's digest.
type DynamicEntry struct {
	End    uint64
	Digest [32]byte
}

// Dynamic is a parsed dynamic-size chunk index (.didx). Chunk i covers the
// stream bytes [Entries[i-1].End, Entries[i].End), with Entries[-1].End = 0.
// End offsets of a parsed index never decrease.
type Dynamic struct {
	UUID    [16]byte
	Ctime   int64
	Csum    [32]byte // index_csum as stored in the header
	Entries []DynamicEntry
}

// ParseDynamic parses a complete .didx file. It checks that the file holds at
// least the header, that the magic matches, that the entry area is a whole
// number of 40-byte entries (as PBS's reader does) and, in addition, that the
// end offsets never decrease. The returned index does not reference raw.
//
// The header checksum is returned in Csum but not verified; compare it with
// ComputeCsum (and the manifest's csum) as PBS's verify does.
func ParseDynamic(raw []byte) (*Dynamic, error) {
	if err := checkHeader(kindDynamic, raw, &dynamicMagic); err != nil {
		return nil, err
	}
	body := len(raw) - HeaderSize
	if body%DynamicEntrySize != 0 {
		return nil, corrupt(kindDynamic,
			"got unexpected file size (%d entry bytes is not a multiple of %d; %d trailing bytes)",
			body, DynamicEntrySize, body%DynamicEntrySize)
	}
	d := &Dynamic{
		UUID:    [16]byte(raw[offUUID : offUUID+16]),
		Ctime:   int64(binary.LittleEndian.Uint64(raw[offCtime:])),
		Csum:    [32]byte(raw[offCsum : offCsum+32]),
		Entries: make([]DynamicEntry, body/DynamicEntrySize),
	}
	p := raw[HeaderSize:]
	var prev uint64
	for i := range d.Entries {
		e := &d.Entries[i]
		e.End = binary.LittleEndian.Uint64(p)
		if e.End < prev {
			return nil, corrupt(kindDynamic,
				"entry %d end offset %d is below the previous end offset %d", i, e.End, prev)
		}
		prev = e.End
		e.Digest = [32]byte(p[8:DynamicEntrySize])
		p = p[DynamicEntrySize:]
	}
	return d, nil
}

// Size returns the stream size, the end offset of the last entry (0 if empty).
func (d *Dynamic) Size() uint64 {
	if len(d.Entries) == 0 {
		return 0
	}
	return d.Entries[len(d.Entries)-1].End
}

// ComputeCsum returns SHA-256(end₀_le ‖ digest₀ ‖ end₁_le ‖ digest₁ ‖ …), the
// value PBS stores as index_csum and in the manifest's csum field, and the
// total stream size (the last end offset), as PBS's compute_csum does.
func (d *Dynamic) ComputeCsum() (csum [32]byte, size uint64) {
	const batch = 128
	h := sha256.New()
	buf := make([]byte, 0, batch*DynamicEntrySize)
	for i := range d.Entries {
		e := &d.Entries[i]
		buf = binary.LittleEndian.AppendUint64(buf, e.End)
		buf = append(buf, e.Digest[:]...)
		if len(buf) == cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	h.Sum(csum[:0])
	return csum, d.Size()
}

// ChunkRange returns the byte range [start, end) of chunk i; ok is false if i
// is out of range.
func (d *Dynamic) ChunkRange(i int) (start, end uint64, ok bool) {
	if i < 0 || i >= len(d.Entries) {
		return 0, 0, false
	}
	if i > 0 {
		start = d.Entries[i-1].End
	}
	return start, d.Entries[i].End, true
}

// ChunkAt finds, by binary search over the end offsets, the chunk containing
// stream offset off and returns its index and byte range [start, end). Empty
// chunks (end equal to the previous end) are never returned. ok is false if
// off >= Size().
func (d *Dynamic) ChunkAt(off uint64) (i int, start, end uint64, ok bool) {
	// Find the first entry with End > off.
	lo, hi := 0, len(d.Entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.Entries[m].End <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(d.Entries) {
		return 0, 0, 0, false
	}
	if lo > 0 {
		start = d.Entries[lo-1].End
	}
	return lo, start, d.Entries[lo].End, true
}

// Encode serializes the index: header with the magic, UUID, Ctime, the
// checksum computed over Entries (d.Csum is ignored) and zero reserved bytes,
// followed by the entries. It does not validate; entries whose end offsets
// decrease encode to a file ParseDynamic rejects.
func (d *Dynamic) Encode() []byte {
	out := make([]byte, HeaderSize+DynamicEntrySize*len(d.Entries))
	copy(out[offMagic:], dynamicMagic[:])
	copy(out[offUUID:], d.UUID[:])
	binary.LittleEndian.PutUint64(out[offCtime:], uint64(d.Ctime))
	p := out[HeaderSize:]
	for i := range d.Entries {
		q := p[i*DynamicEntrySize:]
		binary.LittleEndian.PutUint64(q, d.Entries[i].End)
		copy(q[8:DynamicEntrySize], d.Entries[i].Digest[:])
	}
	sum := sha256.Sum256(p)
	copy(out[offCsum:], sum[:])
	return out
}
