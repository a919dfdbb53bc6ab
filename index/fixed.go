package index

import (
	"crypto/sha256"
	"encoding/binary"
)

const kindFixed = "fixed"

// Fixed is a parsed fixed-size chunk index (.fidx). Chunk i covers the image
// bytes [i*ChunkSize, min((i+1)*ChunkSize, Size)); only the last chunk may be
// short. len(Digests) == ceil(Size/ChunkSize) for every parsed index.
type Fixed struct {
	UUID      [16]byte
	Ctime     int64
	Csum      [32]byte // index_csum as stored in the header
	Size      uint64   // image size in bytes
	ChunkSize uint64   // power of two
	Digests   [][32]byte
}

// fixedCount returns ceil(size/chunkSize) without overflow; chunkSize must be > 0.
func fixedCount(size, chunkSize uint64) uint64 {
	n := size / chunkSize
	if size%chunkSize != 0 {
		n++
	}
	return n
}

// ParseFixed parses a complete .fidx file. It checks, like PBS's reader, that
// the file holds at least the header, that the magic matches, that chunk_size
// is a power of two and that the file holds exactly ceil(size/chunk_size)
// digests. The returned index does not reference raw.
//
// The header checksum is returned in Csum but not verified; compare it with
// ComputeCsum (and the manifest's csum) as PBS's verify does.
func ParseFixed(raw []byte) (*Fixed, error) {
	if err := checkHeader(kindFixed, raw, &fixedMagic); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint64(raw[offSize:])
	chunkSize := binary.LittleEndian.Uint64(raw[offChunkSize:])
	if chunkSize == 0 || chunkSize&(chunkSize-1) != 0 {
		return nil, corrupt(kindFixed, "chunk size %d is not a power of two", chunkSize)
	}
	want := fixedCount(size, chunkSize)
	body := uint64(len(raw) - HeaderSize)
	if body%FixedEntrySize != 0 || body/FixedEntrySize != want {
		return nil, corrupt(kindFixed,
			"got unexpected file size (%d entry bytes, size %d / chunk size %d needs %d digests of %d bytes)",
			body, size, chunkSize, want, FixedEntrySize)
	}
	f := &Fixed{
		UUID:      [16]byte(raw[offUUID : offUUID+16]),
		Ctime:     int64(binary.LittleEndian.Uint64(raw[offCtime:])),
		Csum:      [32]byte(raw[offCsum : offCsum+32]),
		Size:      size,
		ChunkSize: chunkSize,
		Digests:   make([][32]byte, want),
	}
	p := raw[HeaderSize:]
	for i := range f.Digests {
		f.Digests[i] = [32]byte(p[:FixedEntrySize])
		p = p[FixedEntrySize:]
	}
	return f, nil
}

// ComputeCsum returns SHA-256(digest₀ ‖ digest₁ ‖ …), the value PBS stores as
// index_csum and in the manifest's csum field.
func (f *Fixed) ComputeCsum() [32]byte {
	h := sha256.New()
	for i := range f.Digests {
		h.Write(f.Digests[i][:])
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// ChunkRange returns the byte range [start, end) of chunk i. ok is false if i
// is out of range or the index is inconsistent (zero chunk size).
func (f *Fixed) ChunkRange(i int) (start, end uint64, ok bool) {
	if i < 0 || i >= len(f.Digests) || f.ChunkSize == 0 {
		return 0, 0, false
	}
	start = uint64(i) * f.ChunkSize
	if start/f.ChunkSize != uint64(i) || start >= f.Size {
		return 0, 0, false
	}
	end = f.Size
	if f.Size-start > f.ChunkSize {
		end = start + f.ChunkSize
	}
	return start, end, true
}

// ChunkAt returns the chunk that contains image offset off and its byte range
// [start, end). ok is false if off >= Size.
func (f *Fixed) ChunkAt(off uint64) (i int, start, end uint64, ok bool) {
	if off >= f.Size || f.ChunkSize == 0 {
		return 0, 0, 0, false
	}
	n := off / f.ChunkSize
	if n >= uint64(len(f.Digests)) {
		return 0, 0, 0, false
	}
	start, end, ok = f.ChunkRange(int(n))
	return int(n), start, end, ok
}

// Encode serializes the index: header with the magic, UUID, Ctime, Size,
// ChunkSize, the checksum computed over Digests (f.Csum is ignored) and zero
// reserved bytes, followed by the digests. It does not validate; an index whose
// Digests do not match Size/ChunkSize encodes to a file ParseFixed rejects.
func (f *Fixed) Encode() []byte {
	out := make([]byte, HeaderSize+FixedEntrySize*len(f.Digests))
	copy(out[offMagic:], fixedMagic[:])
	copy(out[offUUID:], f.UUID[:])
	binary.LittleEndian.PutUint64(out[offCtime:], uint64(f.Ctime))
	binary.LittleEndian.PutUint64(out[offSize:], f.Size)
	binary.LittleEndian.PutUint64(out[offChunkSize:], f.ChunkSize)
	p := out[HeaderSize:]
	for i := range f.Digests {
		copy(p[i*FixedEntrySize:], f.Digests[i][:])
	}
	sum := sha256.Sum256(p)
	copy(out[offCsum:], sum[:])
	return out
}
