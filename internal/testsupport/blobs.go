package testsupport

import (
	"encoding/binary"
	"hash/crc32"

	"pbsfs/manifest"
)

// BombBlob is a compressed blob (valid magic and CRC) whose zstd frame is
// built to take far more memory than its size: no content size, and
// blocks blocks of 4 bytes that each may decode to 128 KiB. With rle they
// are RLE blocks, so the frame is valid and really decodes to blocks×128 KiB
// of '{'; without, they are compressed blocks of garbage, so a decoder
// must reserve that much before finding out.
func BombBlob(blocks int, rle bool) []byte {
	z := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50} // magic, no FCS/checksum, 1 MiB window
	for i := range blocks {
		bh := uint32(128<<10)<<3 | 1<<1 // 128 KiB, RLE
		if !rle {
			bh = 1<<3 | 2<<1 // 1 byte, compressed
		}
		if i == blocks-1 {
			bh |= 1 // last
		}
		z = append(z, byte(bh), byte(bh>>8), byte(bh>>16), '{')
	}
	m := manifest.MagicCompressed()
	out := binary.LittleEndian.AppendUint32(append([]byte(nil), m[:]...), crc32.ChecksumIEEE(z))
	return append(out, z...)
}
