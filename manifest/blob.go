package manifest

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxBlobSize is the largest data PBS's DataBlob::encode accepts, and the
// largest decoded output this package produces (128 MiB).
const MaxBlobSize = 128 << 20

// Header sizes of the unencrypted and encrypted blob layouts.
const (
	HeaderSize          = 12 // magic(8) crc(4)
	EncryptedHeaderSize = 44 // magic(8) crc(4) iv(16) tag(16)
)

// Magic is the 8-byte type tag at the start of a blob.
type Magic [8]byte

var (
	magicUncompressed = Magic{66, 171, 56, 7, 190, 131, 112, 161}
	magicCompressed   = Magic{49, 185, 88, 66, 111, 182, 163, 127}
	magicEncrypted    = Magic{123, 103, 133, 190, 34, 45, 76, 240}
	magicEncrCompr    = Magic{230, 89, 27, 191, 11, 191, 216, 11}
)

// historicMagics are magics of removed formats (pbs-format.md §1.1). They are
// rejected with ErrWrongMagic; the table only improves the message.
var historicMagics = map[Magic]string{
	{79, 127, 200, 4, 121, 74, 135, 239}:   "removed uncompressed chunk format",
	{8, 54, 114, 153, 70, 156, 26, 151}:    "removed encrypted chunk format",
	{191, 237, 46, 195, 108, 17, 228, 235}: "removed compressed chunk format",
	{9, 40, 53, 200, 37, 150, 90, 196}:     "removed encrypted+compressed chunk format",
	{31, 135, 238, 226, 145, 206, 5, 2}:    "removed authenticated blob format",
	{126, 166, 15, 190, 145, 31, 169, 96}:  "removed authenticated compressed blob format",
	{47, 127, 65, 237, 145, 253, 15, 205}:  "fixed index (.fidx), not a blob",
	{28, 145, 78, 165, 25, 186, 179, 205}:  "dynamic index (.didx), not a blob",
	{145, 253, 96, 249, 196, 103, 88, 213}: "catalog stream, not a blob",
}

// MagicUncompressed returns UNCOMPRESSED_BLOB_MAGIC_1_0.
func MagicUncompressed() Magic { return magicUncompressed }

// MagicCompressed returns COMPRESSED_BLOB_MAGIC_1_0 (zstd).
func MagicCompressed() Magic { return magicCompressed }

// MagicEncrypted returns ENCRYPTED_BLOB_MAGIC_1_0.
func MagicEncrypted() Magic { return magicEncrypted }

// MagicEncryptedCompressed returns ENCR_COMPR_BLOB_MAGIC_1_0.
func MagicEncryptedCompressed() Magic { return magicEncrCompr }

// Valid reports whether m is one of the four DataBlob magics.
func (m Magic) Valid() bool {
	return m == magicUncompressed || m == magicCompressed || m == magicEncrypted || m == magicEncrCompr
}

// Encrypted reports whether m is one of the two encrypted magics.
func (m Magic) Encrypted() bool { return m == magicEncrypted || m == magicEncrCompr }

// Compressed reports whether the payload under m is (or encrypts) zstd data.
func (m Magic) Compressed() bool { return m == magicCompressed || m == magicEncrCompr }

// HeaderSize returns 12 or 44 for a valid magic and 0 otherwise.
func (m Magic) HeaderSize() int {
	switch {
	case m == magicUncompressed || m == magicCompressed:
		return HeaderSize
	case m.Encrypted():
		return EncryptedHeaderSize
	}
	return 0
}

// String names the magic; unknown magics are shown in hex.
func (m Magic) String() string {
	switch m {
	case magicUncompressed:
		return "uncompressed blob v1.0"
	case magicCompressed:
		return "zstd compressed blob v1.0"
	case magicEncrypted:
		return "encrypted blob v1.0"
	case magicEncrCompr:
		return "zstd compressed encrypted blob v1.0"
	}
	return hex.EncodeToString(m[:])
}

// Blob is a parsed DataBlob. Payload aliases the raw bytes given to
// ParseBlob; do not modify raw while the Blob is in use.
type Blob struct {
	Magic   Magic
	CRC     uint32
	IV, Tag [16]byte // encrypted blobs only
	Payload []byte   // bytes after the 12/44-byte header (what the CRC covers)
}

// ParseBlob checks length, magic and CRC of a raw blob (DataBlob::from_raw
// plus verify_crc). It does not decompress.
func ParseBlob(raw []byte) (*Blob, error) {
	if len(raw) < HeaderSize {
		return nil, fmt.Errorf("%w (%d bytes, need at least %d)", ErrTruncated, len(raw), HeaderSize)
	}
	var b Blob
	copy(b.Magic[:], raw[:8])
	if !b.Magic.Valid() {
		if what, ok := historicMagics[b.Magic]; ok {
			return nil, fmt.Errorf("%w: magic %x is the %s", ErrWrongMagic, b.Magic[:], what)
		}
		return nil, fmt.Errorf("%w: unknown magic %x", ErrWrongMagic, b.Magic[:])
	}
	hs := b.Magic.HeaderSize()
	if len(raw) < hs {
		return nil, fmt.Errorf("%w: encrypted blob too small (%d bytes, need at least %d)", ErrTruncated, len(raw), hs)
	}
	b.CRC = binary.LittleEndian.Uint32(raw[8:12])
	if hs == EncryptedHeaderSize {
		copy(b.IV[:], raw[12:28])
		copy(b.Tag[:], raw[28:44])
	}
	b.Payload = raw[hs:]
	if got := crc32.ChecksumIEEE(b.Payload); got != b.CRC {
		return nil, fmt.Errorf("%w (stored %08x, computed %08x over %d payload bytes)", ErrBadCRC, b.CRC, got, len(b.Payload))
	}
	return &b, nil
}

// Encrypted reports whether the payload is encrypted.
func (b *Blob) Encrypted() bool { return b.Magic.Encrypted() }

// Compressed reports whether the (possibly encrypted) payload is zstd data.
func (b *Blob) Compressed() bool { return b.Magic.Compressed() }

// Decode returns the plain data. Encrypted blobs yield ErrEncrypted. For
// uncompressed blobs the result aliases b.Payload. Decompressed output is
// limited to MaxBlobSize (ErrTooLarge), so a small hostile payload cannot
// make it allocate more than that.
func (b *Blob) Decode() ([]byte, error) {
	if b.Encrypted() {
		return nil, ErrEncrypted
	}
	data, _, err := b.DecodeInto(nil, heapBuffers{})
	return data, err
}

// Buffers lends the memory a decode writes into, so that a reader of many
// chunks can reuse it instead of allocating (and zeroing) megabytes per
// chunk, and a process can bound what its decodes hold at once. Get returns
// a slice of length 0 and capacity at least n, or an error (wrapping
// ErrNoMemory when a memory budget is spent), which the decode returns
// wrapped without decoding; Put takes back one that nothing uses any more.
// A decode asks for its output before decoding, as much as the frame
// headers allow (up to MaxBlobSize for a crafted header).
type Buffers interface {
	Get(n int) ([]byte, error)
	Put(b []byte)
}

// heapBuffers allocates every buffer and lets the garbage collector take
// them back.
type heapBuffers struct{}

func (heapBuffers) Get(n int) ([]byte, error) { return make([]byte, 0, n), nil }
func (heapBuffers) Put([]byte)                {}

// DecodeInto is DecodeWith writing into memory from bufs. It returns the
// plain data and buf, the buffer from bufs that holds it, which the caller
// owns and gives back to bufs once data is no longer used; buf is nil when
// data aliases b.Payload (an uncompressed, unencrypted blob). Buffers used
// on the way (the decrypted form of a compressed payload, or the output of
// a failed decode) are given back before it returns. With c == nil an
// encrypted blob yields ErrEncrypted.
func (b *Blob) DecodeInto(c *CryptConfig, bufs Buffers) (data, buf []byte, err error) {
	payload := b.Payload
	var plain []byte // bufs memory holding payload, when decrypted
	if b.Encrypted() {
		if c == nil {
			return nil, nil, ErrEncrypted
		}
		if plain, err = c.decrypt(b, bufs); err != nil {
			return nil, nil, err
		}
		payload = plain
	}
	if !b.Compressed() {
		return payload, plain, nil
	}
	codec, err := sharedCodec()
	if err == nil {
		data, err = codec.decompress(payload, bufs)
	}
	if plain != nil {
		bufs.Put(plain)
	}
	if err != nil {
		return nil, nil, err
	}
	return data, data, nil
}

// DecodeBlob is ParseBlob followed by Decode.
func DecodeBlob(raw []byte) ([]byte, error) {
	b, err := ParseBlob(raw)
	if err != nil {
		return nil, err
	}
	return b.Decode()
}

// EncodeBlob encodes data as an unencrypted blob. With compress, the data is
// compressed with zstd level 1 (SpeedFastest) and the compressed form is kept
// only if it is not larger than data (PBS 3.2+ rule); otherwise, or without
// compress, the data is stored uncompressed. The result never aliases data.
func EncodeBlob(data []byte, compress bool) ([]byte, error) {
	if len(data) > MaxBlobSize {
		return nil, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, len(data), MaxBlobSize)
	}
	if compress {
		c, err := sharedCodec()
		if err != nil {
			return nil, err
		}
		// Compress straight behind a reserved header; the capacity covers the
		// accepted case without growing.
		out := make([]byte, HeaderSize, HeaderSize+len(data)+64)
		out = c.enc.EncodeAll(data, out)
		if len(out)-HeaderSize <= len(data) {
			copy(out[:8], magicCompressed[:])
			binary.LittleEndian.PutUint32(out[8:12], crc32.ChecksumIEEE(out[HeaderSize:]))
			return out, nil
		}
	}
	out := make([]byte, HeaderSize+len(data))
	copy(out[:8], magicUncompressed[:])
	copy(out[HeaderSize:], data)
	binary.LittleEndian.PutUint32(out[8:12], crc32.ChecksumIEEE(data))
	return out, nil
}

// codec holds the zstd encoder and decoder.
//
// Why a package-level, lazily built value and not a Codec passed around:
// the contract exposes free functions (EncodeBlob, DecodeBlob, Blob.Decode)
// used from every layer, and building a zstd encoder/decoder allocates
// tables and worker pools worth keeping. zstd.Encoder.EncodeAll and
// zstd.Decoder.DecodeAll are documented as safe for concurrent use and the
// options below are fixed at construction, so after sync.OnceValues has run
// the codec is immutable from the package's point of view (its internal
// pools are an implementation detail, like a sync.Pool). Building it lazily
// keeps importers that never touch zstd from paying for it. The stateful
// streaming APIs (Reset/Read/Write) are never used here.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var sharedCodec = sync.OnceValues(func() (*codec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest), // PBS: level 1
		zstd.WithEncoderConcurrency(0),           // GOMAXPROCS concurrent EncodeAll calls
		zstd.WithEncoderCRC(false),               // like libzstd's bulk default; the blob has its own CRC
		zstd.WithZeroFrames(true),                // empty input → real frame (then stored uncompressed, like PBS)
	)
	if err != nil {
		return nil, fmt.Errorf("manifest: create zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),         // GOMAXPROCS block decoders, each a few hundred KiB
		zstd.WithDecoderMaxMemory(MaxBlobSize), // per-frame output bound
		zstd.WithDecoderMaxWindow(maxZstdWindow),
		zstd.WithDecodeAllCapLimit(true), // never grow past the buffer decompress reserved
	)
	if err != nil {
		return nil, fmt.Errorf("manifest: create zstd decoder: %w", err)
	}
	return &codec{enc: enc, dec: dec}, nil
})

// maxZstdWindow bounds the window a frame header may ask for. PBS
// compresses at level 1 (window at most 512 KiB) and our encoder with a
// window of at most 8 MiB; single-segment frames (what a bulk encoder of a
// known size writes) carry no window and are bounded by their content size
// instead. The decoder would otherwise accept windows up to MaxBlobSize.
const maxZstdWindow = 8 << 20

// maxZstdBlock is the largest output of one zstd block (Block_Maximum_Size).
const maxZstdBlock = 128 << 10

// zstdScan walks the frame and block headers of a zstd stream without
// decoding anything. bound is an upper limit of the decoded size (each
// frame counts min(declared content size, sum of block limits)), declared is
// the sum of declared content sizes (saturating), frames counts non-skippable
// frames. Both sums saturate instead of overflowing.
func zstdScan(p []byte) (bound, declared uint64, frames int, err error) {
	for fi := 0; len(p) > 0; fi++ {
		var h zstd.Header
		rest, err := h.DecodeAndStrip(p)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("zstd frame %d header: %w", fi, err)
		}
		if h.Skippable {
			if uint64(len(rest)) < uint64(h.SkippableSize) {
				return 0, 0, 0, fmt.Errorf("zstd skippable frame %d truncated", fi)
			}
			p = rest[h.SkippableSize:]
			continue
		}
		frames++
		var blocks uint64
		for last := false; !last; {
			if len(rest) < 3 {
				return 0, 0, 0, fmt.Errorf("zstd frame %d: truncated block header", fi)
			}
			bh := uint32(rest[0]) | uint32(rest[1])<<8 | uint32(rest[2])<<16
			rest = rest[3:]
			last = bh&1 != 0
			size := uint64(bh >> 3)
			in := size
			switch (bh >> 1) & 3 {
			case 0: // raw
			case 1: // RLE: one byte repeated size times
				in = 1
			case 2: // compressed: at most one maximal block of output
				size = maxZstdBlock
			default:
				return 0, 0, 0, fmt.Errorf("zstd frame %d: reserved block type", fi)
			}
			if uint64(len(rest)) < in {
				return 0, 0, 0, fmt.Errorf("zstd frame %d: truncated block (%d of %d bytes)", fi, len(rest), in)
			}
			rest = rest[in:]
			blocks += min(size, maxZstdBlock) // larger blocks are rejected by the decoder
		}
		if h.HasCheckSum {
			if len(rest) < 4 {
				return 0, 0, 0, fmt.Errorf("zstd frame %d: truncated checksum", fi)
			}
			rest = rest[4:]
		}
		fb := blocks
		if h.HasFCS {
			fb = min(fb, h.FrameContentSize)
			declared = satAdd(declared, h.FrameContentSize)
		}
		bound = satAdd(bound, fb)
		p = rest
	}
	return bound, declared, frames, nil
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// decompress decodes a zstd payload (any number of frames) into at most
// MaxBlobSize bytes.
//
// WithDecoderMaxMemory bounds each frame's output, but not the sum over
// concatenated frames, and DecodeAll grows its buffer as it goes. So the
// stream is first scanned (headers only, cheap) for a bound on its output:
// declared content sizes (PBS's bulk encoder always writes one) and, for
// frames without one, 128 KiB per compressed block and the exact size of raw
// and RLE blocks. The output buffer is allocated once at that bound, which
// never exceeds MaxBlobSize, and a declared or possible size beyond the limit
// is refused before decoding. The one case where the bound is not known to be
// small enough is a single frame without content size (old streaming
// writers); there the decoder's per-frame limit is exact. A multi-frame
// stream that might exceed the limit is refused (ErrTooLarge) even if it
// would in fact fit; PBS never writes those.
func (c *codec) decompress(payload []byte, bufs Buffers) ([]byte, error) {
	bound, declared, frames, err := zstdScan(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if declared > MaxBlobSize {
		return nil, fmt.Errorf("%w: zstd frames declare %d bytes, limit %d", ErrTooLarge, declared, MaxBlobSize)
	}
	clamped := bound > MaxBlobSize
	if clamped {
		if frames > 1 {
			return nil, fmt.Errorf("%w: %d zstd frames may decode to %d bytes, limit %d", ErrTooLarge, frames, bound, MaxBlobSize)
		}
		bound = MaxBlobSize
	}
	buf, err := bufs.Get(int(bound) + 64)
	if err != nil {
		return nil, fmt.Errorf("output buffer for a %d-byte zstd payload: %w", len(payload), err)
	}
	out, err := c.dec.DecodeAll(payload, buf[:0])
	if err != nil {
		bufs.Put(buf)
		switch {
		case errors.Is(err, zstd.ErrWindowSizeExceeded):
			return nil, fmt.Errorf("%w: zstd frame needs a window larger than %d bytes: %w", ErrTooLarge, maxZstdWindow, err)
		case errors.Is(err, zstd.ErrDecoderSizeExceeded) && clamped:
			return nil, fmt.Errorf("%w: zstd payload decodes to more than %d bytes: %w", ErrTooLarge, MaxBlobSize, err)
		case errors.Is(err, zstd.ErrDecoderSizeExceeded):
			// More output than its own headers allow (the buffer is the
			// scanned bound and the decoder may not grow it).
			return nil, fmt.Errorf("%w: zstd payload decodes to more than its headers declare (%d bytes): %w", ErrCorrupt, bound, err)
		}
		return nil, fmt.Errorf("%w: zstd decode of %d-byte payload: %w", ErrCorrupt, len(payload), err)
	}
	if len(out) > MaxBlobSize { // cannot happen (see above); keep the promise anyway
		bufs.Put(buf)
		return nil, fmt.Errorf("%w: decoded %d bytes, limit %d", ErrTooLarge, len(out), MaxBlobSize)
	}
	if !sameArray(out, buf) {
		bufs.Put(buf) // the decoder outgrew buf (cannot happen either): out is its own
	}
	return out, nil
}

// sameArray reports whether a and b share their first byte of memory.
func sameArray(a, b []byte) bool { return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0] }
