package manifest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// KeySize is the size of a PBS encryption key (AES-256).
const KeySize = 32

// ivSize and tagSize are the sizes of the IV and GCM tag in the encrypted
// blob header (pbs-format.md §1.2, §1.5).
const (
	ivSize  = 16
	tagSize = 16
)

// ErrDecrypt: AES-GCM rejected an encrypted blob's tag. The payload was
// changed after it was written, or the key is not the one it was written
// with. (Is ErrCorrupt: with the right key it can only be damage.)
var ErrDecrypt error = &kindError{"unable to decrypt blob (wrong key or corrupted data)", ErrCorrupt}

// ErrDigest: decoded data does not hash to the digest the index expects
// (PBS: "detected chunk with wrong digest"). Is ErrCorrupt.
var ErrDigest error = &kindError{"detected chunk with wrong digest", ErrCorrupt}

// CryptConfig is PBS's CryptConfig: an encryption key with what is derived
// from it — the AES-256-GCM cipher, the id key (for keyed chunk digests and
// manifest signatures) and the key's fingerprint. It is immutable and safe
// for concurrent use.
type CryptConfig struct {
	aead        cipher.AEAD
	idKey       []byte
	fingerprint string
}

// NewCryptConfig returns the configuration for a raw 32-byte encryption key
// (the key itself, not a key file; see package keyfile for those).
func NewCryptConfig(encKey []byte) (*CryptConfig, error) {
	if len(encKey) != KeySize {
		return nil, invalidArg("encryption key has %d bytes, want %d", len(encKey), KeySize)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("crypt config: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, ivSize)
	if err != nil {
		return nil, fmt.Errorf("crypt config: %w", err)
	}
	idKey := DeriveIDKey(encKey)
	if len(idKey) == 0 {
		return nil, invalidArg("cannot derive the id key")
	}
	return &CryptConfig{aead: aead, idKey: idKey, fingerprint: FingerprintFromIDKey(idKey)}, nil
}

// IDKey returns a copy of the derived id key (DeriveIDKey of the
// encryption key): the HMAC key of manifest signatures.
func (c *CryptConfig) IDKey() []byte { return append([]byte(nil), c.idKey...) }

// Fingerprint returns the key's fingerprint as PBS shows it (colon hex), the
// value of a signed manifest's unprotected "key-fingerprint".
func (c *CryptConfig) Fingerprint() string { return c.fingerprint }

// ComputeDigest returns the digest of an encrypted chunk's plain data:
// SHA-256(data ‖ id_key) (PBS compute_digest).
func (c *CryptConfig) ComputeDigest(data []byte) [32]byte {
	h := sha256.New()
	h.Write(data)
	h.Write(c.idKey)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// ChunkDigest returns the digest a chunk with the given plain data is stored
// under: ComputeDigest for encrypted chunks (c != nil), plain SHA-256 for
// unencrypted ones (c == nil), as PBS's DataChunkBuilder does. Unencrypted
// chunks of "sign-only" archives use the plain digest too.
func ChunkDigest(data []byte, c *CryptConfig) [32]byte {
	if c == nil {
		return sha256.Sum256(data)
	}
	return c.ComputeDigest(data)
}

// DecryptBlob returns the plain data of a blob: for encrypted blobs it
// checks the GCM tag (ErrDecrypt) and, for the compressed-encrypted magic,
// decompresses (bounded like Decode); unencrypted blobs are decoded as by
// Decode. The result never aliases b.Payload for encrypted blobs.
func (c *CryptConfig) DecryptBlob(b *Blob) ([]byte, error) {
	data, _, err := b.DecodeInto(c, heapBuffers{})
	return data, err
}

// decrypt checks the GCM tag of an encrypted blob and returns its
// decrypted payload (still compressed for the compressed-encrypted magic)
// in a buffer from bufs.
func (c *CryptConfig) decrypt(b *Blob, bufs Buffers) ([]byte, error) {
	// GCM wants ciphertext ‖ tag in one slice; the blob keeps the tag in
	// the header. One copy, then decryption in place.
	n := len(b.Payload) + tagSize
	buf, err := bufs.Get(n)
	if err != nil {
		return nil, fmt.Errorf("decryption buffer: %w", err)
	}
	buf = buf[:n]
	copy(buf, b.Payload)
	copy(buf[len(b.Payload):], b.Tag[:])
	plain, err := c.aead.Open(buf[:0], b.IV[:], buf, nil)
	if err != nil {
		bufs.Put(buf)
		return nil, fmt.Errorf("%w: %s payload of %d bytes", ErrDecrypt, b.Magic, len(b.Payload))
	}
	return plain, nil
}

// DecodeWith decodes the blob with an optional key: with c == nil it is
// Decode (ErrEncrypted for encrypted blobs), otherwise c.DecryptBlob.
func (b *Blob) DecodeWith(c *CryptConfig) ([]byte, error) {
	if c == nil {
		return b.Decode()
	}
	return c.DecryptBlob(b)
}

// EncodeBlob encodes data as an encrypted blob as PBS's DataBlob::encode
// does with a CryptConfig: zstd level 1 first when compress is set and the
// result is not larger, then AES-256-GCM with a random 16-byte IV and empty
// AAD; header = magic ‖ CRC-32 ‖ IV ‖ tag, the CRC covering the ciphertext.
// For writers (tests, demos).
func (c *CryptConfig) EncodeBlob(data []byte, compress bool) ([]byte, error) {
	var iv [ivSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return nil, fmt.Errorf("encrypt blob: random IV: %w", err)
	}
	return c.encodeBlobIV(data, compress, iv)
}

// encodeBlobIV is EncodeBlob with a given IV (deterministic tests).
func (c *CryptConfig) encodeBlobIV(data []byte, compress bool, iv [ivSize]byte) ([]byte, error) {
	plain, err := EncodeBlob(data, compress)
	if err != nil {
		return nil, fmt.Errorf("encrypt blob: %w", err)
	}
	magic := magicEncrypted
	if Magic(plain[:8]) == magicCompressed {
		magic = magicEncrCompr
	}
	payload := plain[HeaderSize:]
	out := make([]byte, EncryptedHeaderSize, EncryptedHeaderSize+len(payload)+tagSize)
	out = c.aead.Seal(out, iv[:], payload, nil)
	ctEnd := len(out) - tagSize
	copy(out[0:8], magic[:])
	copy(out[12:28], iv[:])
	copy(out[28:44], out[ctEnd:])
	out = out[:ctEnd]
	binary.LittleEndian.PutUint32(out[8:12], crc32.ChecksumIEEE(out[EncryptedHeaderSize:]))
	return out, nil
}
