package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCRCCheckValue(t *testing.T) {
	// The standard CRC-32/ISO-HDLC check value (pbs-format.md §1.3).
	if got := crc32.ChecksumIEEE([]byte("123456789")); got != 0xCBF43926 {
		t.Fatalf("crc32 check value = %#x, want 0xcbf43926", got)
	}
}

func TestMagicsAreSHA256Prefixes(t *testing.T) {
	for _, tc := range []struct {
		m   Magic
		src string
	}{
		{MagicUncompressed(), "Proxmox Backup uncompressed blob v1.0"},
		{MagicCompressed(), "Proxmox Backup zstd compressed blob v1.0"},
		{MagicEncrypted(), "Proxmox Backup encrypted blob v1.0"},
		{MagicEncryptedCompressed(), "Proxmox Backup zstd compressed encrypted blob v1.0"},
	} {
		sum := sha256.Sum256([]byte(tc.src))
		if !bytes.Equal(tc.m[:], sum[:8]) {
			t.Errorf("magic for %q = %x, want %x", tc.src, tc.m[:], sum[:8])
		}
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHelloGolden(t *testing.T) {
	// pbs-format.md §1.8.
	want := mustHex(t, "42ab3807be8370a1"+"86a61036"+"68656c6c6f")
	for _, compress := range []bool{false, true} {
		got, err := EncodeBlob([]byte("hello"), compress)
		if err != nil {
			t.Fatal(err)
		}
		// With compress=true zstd output (>= 9 bytes) is larger than 5 bytes,
		// so the blob must be stored uncompressed.
		if !bytes.Equal(got, want) {
			t.Errorf("EncodeBlob(hello, %v) = %x, want %x", compress, got, want)
		}
	}
	b, err := ParseBlob(want)
	if err != nil {
		t.Fatal(err)
	}
	if b.CRC != 0x3610a686 || b.Compressed() || b.Encrypted() {
		t.Errorf("parsed hello blob: crc %#x compressed %v encrypted %v", b.CRC, b.Compressed(), b.Encrypted())
	}
	data, err := b.Decode()
	if err != nil || string(data) != "hello" {
		t.Fatalf("Decode = %q, %v", data, err)
	}
	if d := sha256.Sum256(data); hex.EncodeToString(d[:]) != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("chunk digest of hello = %x", d)
	}
}

// blobWith builds a raw blob with a correct CRC around payload.
func blobWith(m Magic, payload []byte) []byte {
	hs := m.HeaderSize()
	if hs == 0 {
		hs = HeaderSize
	}
	raw := make([]byte, hs, hs+len(payload))
	copy(raw, m[:])
	for i := 12; i < hs; i++ {
		raw[i] = byte(i) // IV and tag filler
	}
	raw = append(raw, payload...)
	binary.LittleEndian.PutUint32(raw[8:12], crc32.ChecksumIEEE(raw[hs:]))
	return raw
}

func zstdFrames(t testing.TB, parts ...[]byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out []byte
	for _, p := range parts {
		out = enc.EncodeAll(p, out)
	}
	return out
}

func TestBlobErrors(t *testing.T) {
	hello := mustHex(t, "42ab3807be8370a186a6103668656c6c6f")
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	zhello := zstdFrames(t, []byte(strings.Repeat("hello ", 100)))
	corruptZ := bytes.Clone(zhello)
	corruptZ[len(corruptZ)/2] ^= 0xff
	tests := []struct {
		name    string
		raw     []byte
		want    error
		corrupt bool
		msg     string
	}{
		{"empty", nil, ErrTruncated, true, "0 bytes"},
		{"11 bytes", hello[:11], ErrTruncated, true, "11 bytes"},
		{"unknown magic", append([]byte("NOTABLOB"), hello[8:]...), ErrWrongMagic, true, "unknown magic 4e4f5441424c4f42"},
		{"historic uncompressed chunk", blobWith(Magic{79, 127, 200, 4, 121, 74, 135, 239}, []byte("x")), ErrWrongMagic, true, "removed uncompressed chunk"},
		{"historic encrypted chunk", blobWith(Magic{8, 54, 114, 153, 70, 156, 26, 151}, []byte("x")), ErrWrongMagic, true, "removed encrypted chunk"},
		{"historic compressed chunk", blobWith(Magic{191, 237, 46, 195, 108, 17, 228, 235}, []byte("x")), ErrWrongMagic, true, "removed compressed chunk"},
		{"historic encr compr chunk", blobWith(Magic{9, 40, 53, 200, 37, 150, 90, 196}, []byte("x")), ErrWrongMagic, true, "removed encrypted+compressed chunk"},
		{"historic authenticated", blobWith(Magic{31, 135, 238, 226, 145, 206, 5, 2}, []byte("x")), ErrWrongMagic, true, "authenticated blob"},
		{"historic auth compressed", blobWith(Magic{126, 166, 15, 190, 145, 31, 169, 96}, []byte("x")), ErrWrongMagic, true, "authenticated compressed"},
		{"fidx magic", blobWith(Magic{47, 127, 65, 237, 145, 253, 15, 205}, []byte("x")), ErrWrongMagic, true, "fixed index"},
		{"encrypted too small", blobWith(MagicEncrypted(), nil)[:43], ErrTruncated, true, "encrypted blob too small (43 bytes"},
		{"bad crc (payload flipped)", flip(hello, 14), ErrBadCRC, true, "stored 3610a686"},
		{"bad crc (crc flipped)", flip(hello, 8), ErrBadCRC, true, "computed 3610a686"},
		{"bad crc encrypted", flip(blobWith(MagicEncrypted(), []byte("ciphertext")), 50), ErrBadCRC, true, "wrong CRC"},
		{"corrupt zstd", blobWith(MagicCompressed(), corruptZ), ErrCorrupt, true, "zstd"},
		{"garbage zstd", blobWith(MagicCompressed(), []byte("definitely not zstd")), ErrCorrupt, true, "zstd"},
		{"truncated zstd", blobWith(MagicCompressed(), zhello[:len(zhello)-3]), ErrCorrupt, true, "zstd"},
		{"encrypted", blobWith(MagicEncrypted(), []byte("ciphertext")), ErrEncrypted, false, "missing CryptConfig"},
		{"encrypted compressed", blobWith(MagicEncryptedCompressed(), []byte("ciphertext")), ErrEncrypted, false, "missing CryptConfig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := DecodeBlob(tc.raw)
			if err == nil {
				t.Fatalf("DecodeBlob succeeded with %q", data)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q is not %q", err, tc.want)
			}
			if errors.Is(err, ErrCorrupt) != tc.corrupt {
				t.Errorf("errors.Is(%q, ErrCorrupt) = %v, want %v", err, !tc.corrupt, tc.corrupt)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestParseEncryptedHeader(t *testing.T) {
	raw := blobWith(MagicEncryptedCompressed(), []byte("ciphertext"))
	b, err := ParseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Encrypted() || !b.Compressed() || string(b.Payload) != "ciphertext" {
		t.Fatalf("parsed %+v", b)
	}
	for i := range 16 {
		if b.IV[i] != byte(12+i) || b.Tag[i] != byte(28+i) {
			t.Fatalf("IV %x / tag %x not taken from bytes 12..44", b.IV, b.Tag)
		}
	}
	// The CRC covers only the ciphertext: changing the IV keeps it valid.
	raw[20] ^= 0xff
	if _, err := ParseBlob(raw); err != nil {
		t.Fatalf("IV change broke the CRC check: %v", err)
	}
}

func TestEncodeTooLarge(t *testing.T) {
	_, err := EncodeBlob(make([]byte, MaxBlobSize+1), true)
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "134217729 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestEncodeEmpty(t *testing.T) {
	for _, compress := range []bool{false, true} {
		raw, err := EncodeBlob(nil, compress)
		if err != nil {
			t.Fatal(err)
		}
		// PBS: compressing into a 0-byte buffer fails, so stored uncompressed.
		if !bytes.Equal(raw, blobWith(MagicUncompressed(), nil)) {
			t.Errorf("EncodeBlob(nil, %v) = %x", compress, raw)
		}
		if data, err := DecodeBlob(raw); err != nil || len(data) != 0 {
			t.Errorf("DecodeBlob = %q, %v", data, err)
		}
	}
}

func TestDecodeMultiFrameAndNoContentSize(t *testing.T) {
	parts := [][]byte{[]byte(strings.Repeat("a", 3000)), []byte("bc"), bytes.Repeat([]byte{7}, 200000)}
	want := bytes.Join(parts, nil)
	data, err := DecodeBlob(blobWith(MagicCompressed(), zstdFrames(t, parts...)))
	if err != nil || !bytes.Equal(data, want) {
		t.Fatalf("multi-frame: len %d err %v", len(data), err)
	}

	// A streaming writer leaves the content size out of the frame header,
	// which makes decompress grow its buffer in steps.
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("test setup: want a frame without content size (err %v, HasFCS %v)", err, h.HasFCS)
	}
	data, err = DecodeBlob(blobWith(MagicCompressed(), buf.Bytes()))
	if err != nil || !bytes.Equal(data, big) {
		t.Fatalf("no-FCS frame: len %d err %v", len(data), err)
	}
}

func TestDecodeDeclaredTooLarge(t *testing.T) {
	// A frame header declaring MaxBlobSize+1 bytes of content is refused
	// before anything is allocated.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x80 /* FCS 4 bytes, no single segment */, 0x70 /* window */}
	frame = binary.LittleEndian.AppendUint32(frame, MaxBlobSize+1)
	frame = append(frame, 0x01, 0x00, 0x00) // last raw block of size 0
	_, err := DecodeBlob(blobWith(MagicCompressed(), frame))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "134217729") {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeBombWithoutContentSize(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes 128 MiB")
	}
	// MaxBlobSize+1 zero bytes through a streaming writer (no content size
	// in the header): a few KiB of payload.
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for range MaxBlobSize >> 20 {
		if _, err := w.Write(zero); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = DecodeBlob(blobWith(MagicCompressed(), buf.Bytes()))
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("%d-byte bomb: err = %v", buf.Len(), err)
	}
}

func TestBlobRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var sawCompressed, sawSkipped int
	for i := range 300 {
		n := rng.IntN(1 << uint(rng.IntN(18)+1))
		data := make([]byte, n)
		switch i % 3 {
		case 0: // random: incompressible
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
		case 1: // small alphabet: compressible
			for j := range data {
				data[j] = "ab\n"[rng.IntN(3)]
			}
		case 2: // runs
			for j := range data {
				data[j] = byte(j / 97)
			}
		}
		for _, compress := range []bool{false, true} {
			raw, err := EncodeBlob(data, compress)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBlob(raw)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			got, err := b.Decode()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("case %d (n=%d compress=%v): round trip failed: %v", i, n, compress, err)
			}
			switch {
			case !compress && b.Magic != MagicUncompressed():
				t.Fatalf("case %d: compress=false gave %v", i, b.Magic)
			case b.Magic == MagicCompressed():
				if len(b.Payload) > len(data) {
					t.Fatalf("case %d: kept compressed form of %d bytes for %d bytes of data", i, len(b.Payload), n)
				}
				sawCompressed++
			case compress:
				// Skipped: an independent encoder with the same settings must
				// produce more than len(data) bytes.
				if z := ref.EncodeAll(data, nil); len(z) <= len(data) {
					t.Fatalf("case %d: stored uncompressed although zstd gives %d <= %d bytes", i, len(z), n)
				}
				if !bytes.Equal(b.Payload, data) {
					t.Fatalf("case %d: uncompressed payload differs", i)
				}
				sawSkipped++
			}
		}
	}
	if sawCompressed < 50 || sawSkipped < 50 {
		t.Fatalf("generator too one-sided: %d compressed, %d skipped", sawCompressed, sawSkipped)
	}
}

func TestMagicString(t *testing.T) {
	if s := MagicCompressed().String(); s != "zstd compressed blob v1.0" {
		t.Error(s)
	}
	if s := (Magic{1, 2, 3, 4, 5, 6, 7, 8}).String(); s != "0102030405060708" {
		t.Error(s)
	}
}

// rleFrame builds a zstd frame without content size made of n RLE blocks of
// 128 KiB each (4 bytes of input per 128 KiB of output).
func rleFrame(n int, fcs int64) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd}
	if fcs >= 0 {
		f = append(f, 0x80, 0x38) // 4-byte FCS, window 128 KiB
		f = binary.LittleEndian.AppendUint32(f, uint32(fcs))
	} else {
		f = append(f, 0x00, 0x38) // no FCS, window 128 KiB
	}
	for i := range n {
		bh := uint32(maxZstdBlock)<<3 | 1<<1
		if i == n-1 {
			bh |= 1
		}
		f = append(f, byte(bh), byte(bh>>8), byte(bh>>16), 'z')
	}
	return f
}

func TestDecodeRLEFrames(t *testing.T) {
	// Sanity of the hand-built frames: 3 blocks → 384 KiB of 'z'.
	data, err := DecodeBlob(blobWith(MagicCompressed(), rleFrame(3, -1)))
	if err != nil || len(data) != 3*maxZstdBlock || data[0] != 'z' || data[len(data)-1] != 'z' {
		t.Fatalf("len %d err %v", len(data), err)
	}
	data, err = DecodeBlob(blobWith(MagicCompressed(), append(rleFrame(2, 2*maxZstdBlock), rleFrame(1, -1)...)))
	if err != nil || len(data) != 3*maxZstdBlock {
		t.Fatalf("two frames: len %d err %v", len(data), err)
	}

	// Two frames that together may produce more than MaxBlobSize are refused
	// without decoding.
	twoBig := append(rleFrame(600, -1), rleFrame(600, -1)...)
	_, err = DecodeBlob(blobWith(MagicCompressed(), twoBig))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "2 zstd frames") {
		t.Fatalf("two big frames: %v", err)
	}
	// Two frames declaring 100 MiB each.
	twoDeclared := append(rleFrame(1, 100<<20), rleFrame(1, 100<<20)...)
	_, err = DecodeBlob(blobWith(MagicCompressed(), twoDeclared))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "declare 209715200 bytes") {
		t.Fatalf("two declared frames: %v", err)
	}
	// Declared size smaller than the blocks: corrupt, not a large allocation.
	_, err = DecodeBlob(blobWith(MagicCompressed(), rleFrame(3, 10)))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FCS mismatch: %v", err)
	}
	// Reserved block type and truncation are reported by the scan.
	bad := rleFrame(1, -1)
	bad[6] |= 3 << 1
	if _, err = DecodeBlob(blobWith(MagicCompressed(), bad)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "reserved block type") {
		t.Fatalf("reserved block: %v", err)
	}
	if _, err = DecodeBlob(blobWith(MagicCompressed(), rleFrame(2, -1)[:9])); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}

	if testing.Short() {
		return
	}
	// One frame without content size whose output exceeds the limit: the
	// decoder's per-frame limit stops it.
	_, err = DecodeBlob(blobWith(MagicCompressed(), rleFrame(MaxBlobSize/maxZstdBlock+1, -1)))
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("single big frame: %v", err)
	}
	// Exactly MaxBlobSize is fine.
	data, err = DecodeBlob(blobWith(MagicCompressed(), rleFrame(MaxBlobSize/maxZstdBlock, -1)))
	if err != nil || len(data) != MaxBlobSize {
		t.Fatalf("exactly MaxBlobSize: len %d err %v", len(data), err)
	}
}

// TestEncodeEqualLengthKeepsCompressed pins the PBS 3.2+ rule
// (compressed_len <= data.len()) against the older strictly-smaller one: it
// searches for data whose zstd form is exactly as long as the data.
func TestEncodeEqualLengthKeepsCompressed(t *testing.T) {
	ref, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	r := rand.New(rand.NewPCG(5, 5))
	found := 0
	for _, n := range []int{64, 100, 200, 500, 1000} {
		rnd := make([]byte, n)
		for i := range rnd {
			rnd[i] = byte(r.Uint32())
		}
		for k := 0; k <= n; k++ {
			data := make([]byte, n) // k random bytes, then zeros
			copy(data, rnd[:k])
			if len(ref.EncodeAll(data, nil)) != n {
				continue
			}
			found++
			raw, err := EncodeBlob(data, true)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := ParseBlob(raw); b == nil || !b.Compressed() || len(b.Payload) != n {
				t.Fatalf("n=%d k=%d: equal-length zstd form not kept", n, k)
			}
		}
	}
	if found == 0 {
		t.Fatal("test setup: no equal-length case found; adjust the search")
	}
}
