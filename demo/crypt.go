package demo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"pbsfs/manifest"
)

// Magics of the two encrypted DataBlob variants (pbs-format.md §1.1).
var (
	magicEncrypted = [8]byte{123, 103, 133, 190, 34, 45, 76, 240}
	magicEncrCompr = [8]byte{230, 89, 27, 191, 11, 191, 216, 11}
)

const encryptedHeaderSize = 44

// encryptBlob encodes data as an encrypted DataBlob the way PBS's
// DataBlob::encode does with a CryptConfig (§1.4, §1.5): zstd first if that is
// not larger, then AES-256-GCM with a 16-byte IV and empty AAD; header =
// magic ‖ CRC32 ‖ IV ‖ tag, the CRC covering the ciphertext.
func encryptBlob(key []byte, iv [16]byte, data []byte) ([]byte, error) {
	plain, err := manifest.EncodeBlob(data, true)
	if err != nil {
		return nil, fmt.Errorf("encrypt blob: %w", err)
	}
	b, err := manifest.ParseBlob(plain)
	if err != nil {
		return nil, fmt.Errorf("encrypt blob: re-parse: %w", err)
	}
	magic := magicEncrypted
	if b.Compressed() {
		magic = magicEncrCompr
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encrypt blob: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, fmt.Errorf("encrypt blob: %w", err)
	}
	sealed := gcm.Seal(nil, iv[:], b.Payload, nil)
	ct, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	out := make([]byte, encryptedHeaderSize+len(ct))
	copy(out[0:8], magic[:])
	copy(out[12:28], iv[:])
	copy(out[28:44], tag)
	copy(out[encryptedHeaderSize:], ct)
	binary.LittleEndian.PutUint32(out[8:12], crc32.ChecksumIEEE(out[encryptedHeaderSize:]))
	return out, nil
}

// chunkDigest is PBS's compute_digest: SHA-256 of the plain data, with the
// id key appended for encrypted chunks (§1.5).
func chunkDigest(data, idKey []byte) [32]byte {
	if idKey == nil {
		return sha256.Sum256(data)
	}
	h := sha256.New()
	h.Write(data)
	h.Write(idKey)
	var d [32]byte
	h.Sum(d[:0])
	return d
}
