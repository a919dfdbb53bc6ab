package manifest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// seqKey is the key PBS's own key-config tests use: bytes 0, 1, ..., 31.
func seqKey() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// The fingerprint of the key 0..31 is listed in PBS's
// pbs-key-config/src/lib.rs tests (fingerprint_checks).
func TestCryptConfigFingerprintVector(t *testing.T) {
	c, err := NewCryptConfig(seqKey())
	if err != nil {
		t.Fatal(err)
	}
	want := colonHex([]byte{14, 171, 212, 70, 11, 110, 185, 202, 52, 80, 35, 222, 226, 183, 120, 199,
		144, 229, 74, 22, 131, 185, 101, 156, 10, 87, 174, 25, 144, 144, 21, 155})
	if got := c.Fingerprint(); got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}
	if got := Fingerprint(seqKey()); got != want {
		t.Errorf("Fingerprint() %s, want %s", got, want)
	}
	// id key: PBKDF2-HMAC-SHA256(key, "_id_key", 10, 32), computed with
	// Python's hashlib.
	if got := hex.EncodeToString(c.IDKey()); got != "7c2c013efd07f3b25717a485263343cd4d292a4b65c200bb3b18ea227abe225c" {
		t.Errorf("id key %s", got)
	}
}

// cryptVector is an encrypted (uncompressed) blob made with Python's
// cryptography AESGCM (16-byte nonce, empty AAD) and zlib.crc32, key 0..31,
// IV a0..af: an independent implementation of §1.5.
const (
	cryptVectorPlain  = "hello PBS, this is a test vector"
	cryptVectorRaw    = "7b6785be222d4cf02c851934a0a1a2a3a4a5a6a7a8a9aaabacadaeaf3542939d26f4b5f975e71dbecfdc055c42c64fd077ed9d3490b23fc5857dfeb0eb3663185e4034df89321cd37a4149f5"
	cryptVectorDigest = "2211f6e327b1a50b460f844059b4d7d3ca86fa193dcb2602b92b9b89b19d359a"
)

func TestDecryptVector(t *testing.T) {
	c, err := NewCryptConfig(seqKey())
	if err != nil {
		t.Fatal(err)
	}
	raw := mustHex(t, cryptVectorRaw)
	b, err := ParseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Encrypted() || b.Compressed() {
		t.Fatalf("magic %s", b.Magic)
	}
	if _, err := b.Decode(); !errors.Is(err, ErrEncrypted) {
		t.Errorf("Decode without key: %v", err)
	}
	if _, err := b.DecodeWith(nil); !errors.Is(err, ErrEncrypted) {
		t.Errorf("DecodeWith(nil): %v", err)
	}
	got, err := b.DecodeWith(c)
	if err != nil || string(got) != cryptVectorPlain {
		t.Fatalf("DecodeWith = %q, %v", got, err)
	}
	if d := c.ComputeDigest(got); hex.EncodeToString(d[:]) != cryptVectorDigest {
		t.Errorf("digest %x", d)
	}
	if d := ChunkDigest(got, c); hex.EncodeToString(d[:]) != cryptVectorDigest {
		t.Errorf("ChunkDigest %x", d)
	}
	// The encoder reproduces the vector with the same IV.
	var iv [16]byte
	copy(iv[:], raw[12:28])
	enc, err := c.encodeBlobIV([]byte(cryptVectorPlain), false, iv)
	if err != nil || !bytes.Equal(enc, raw) {
		t.Errorf("encodeBlobIV = %x, %v\nwant %x", enc, err, raw)
	}
}

func TestCryptRoundTrip(t *testing.T) {
	c, err := NewCryptConfig(seqKey())
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCryptConfig(bytes.Repeat([]byte{9}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	compressible := bytes.Repeat([]byte("proxmox backup "), 4000)
	random := make([]byte, 5000)
	for i := range random {
		random[i] = byte(i*7919 + i>>3)
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		compress bool
		magic    Magic
	}{
		{"compressible", compressible, true, MagicEncryptedCompressed()},
		{"uncompressed", compressible, false, MagicEncrypted()},
		{"empty", nil, true, MagicEncrypted()},
		{"small", []byte("x"), true, MagicEncrypted()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := c.EncodeBlob(tc.data, tc.compress)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBlob(raw)
			if err != nil {
				t.Fatal(err)
			}
			if b.Magic != tc.magic {
				t.Fatalf("magic %s, want %s", b.Magic, tc.magic)
			}
			got, err := c.DecryptBlob(b)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("DecryptBlob: %d bytes, %v", len(got), err)
			}
			// Decryption must not have touched the raw bytes.
			if b2, err := ParseBlob(raw); err != nil || b2.CRC != b.CRC {
				t.Fatalf("raw blob changed by decryption: %v", err)
			}
			if _, err := other.DecryptBlob(b); !errors.Is(err, ErrDecrypt) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("wrong key: %v", err)
			}
		})
	}
	// Unencrypted blobs decode with a key as without.
	plain, _ := EncodeBlob(random, true)
	b, _ := ParseBlob(plain)
	if got, err := b.DecodeWith(c); err != nil || !bytes.Equal(got, random) {
		t.Errorf("unencrypted with key: %v", err)
	}
}

func TestDecryptTampered(t *testing.T) {
	c, _ := NewCryptConfig(seqKey())
	raw := mustHex(t, cryptVectorRaw)
	for _, pos := range []int{12, 28, 44, len(raw) - 1} { // IV, tag, first and last ciphertext byte
		bad := append([]byte(nil), raw...)
		bad[pos] ^= 1
		b, err := ParseBlob(bad)
		if pos >= EncryptedHeaderSize {
			// The CRC covers the ciphertext: caught before decryption.
			if !errors.Is(err, ErrBadCRC) {
				t.Errorf("byte %d: ParseBlob %v", pos, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("byte %d: %v", pos, err)
		}
		if _, err := c.DecryptBlob(b); !errors.Is(err, ErrDecrypt) {
			t.Errorf("byte %d: %v", pos, err)
		}
	}
}

func TestNewCryptConfigKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewCryptConfig(make([]byte, n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d-byte key: %v", n, err)
		}
	}
}

func TestChunkDigestPlain(t *testing.T) {
	// §1.8: SHA-256("hello").
	d := ChunkDigest([]byte("hello"), nil)
	if hex.EncodeToString(d[:]) != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("%x", d)
	}
}

func BenchmarkDecryptBlob(b *testing.B) {
	c, _ := NewCryptConfig(seqKey())
	data := bytes.Repeat([]byte("0123456789abcdef proxmox "), 4<<20/25)
	raw, err := c.EncodeBlob(data, true)
	if err != nil {
		b.Fatal(err)
	}
	blob, _ := ParseBlob(raw)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := c.DecryptBlob(blob); err != nil {
			b.Fatal(err)
		}
	}
}
