package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// checkFixedRanges verifies that the chunk ranges of f tile [0, Size) with
// full chunks except possibly a short last one, and that ChunkAt agrees.
func checkFixedRanges(t *testing.T, f *Fixed) {
	t.Helper()
	var next uint64
	for i := range f.Digests {
		start, end, ok := f.ChunkRange(i)
		if !ok || start != next || end <= start || end-start > f.ChunkSize {
			t.Fatalf("chunk %d: [%d,%d) ok=%v, want start %d", i, start, end, ok, next)
		}
		if i < len(f.Digests)-1 && end-start != f.ChunkSize {
			t.Fatalf("chunk %d of %d is short: %d bytes", i, len(f.Digests), end-start)
		}
		for _, off := range []uint64{start, end - 1, start + (end-start)/2} {
			j, s, e, ok := f.ChunkAt(off)
			if !ok || j != i || s != start || e != end {
				t.Fatalf("ChunkAt(%d) = (%d,%d,%d,%v), want (%d,%d,%d,true)", off, j, s, e, ok, i, start, end)
			}
		}
		next = end
	}
	if next != f.Size {
		t.Fatalf("chunks end at %d, size %d", next, f.Size)
	}
	if _, _, _, ok := f.ChunkAt(f.Size); ok {
		t.Fatalf("ChunkAt(Size) ok")
	}
	if _, _, ok := f.ChunkRange(len(f.Digests)); ok {
		t.Fatalf("ChunkRange(len) ok")
	}
	if _, _, ok := f.ChunkRange(-1); ok {
		t.Fatalf("ChunkRange(-1) ok")
	}
}

func TestFixedRoundTrip(t *testing.T) {
	r := newRand(1)
	type sc struct{ size, chunk uint64 }
	cases := []sc{
		{0, 4 << 20},
		{1, 4 << 20},
		{4 << 20, 4 << 20},
		{4<<20 + 1, 4 << 20},
		{3*(4<<20) - 1, 4 << 20},
		{100, 1},
		{(1 << 30) + 12345, 1 << 22},
	}
	for range 200 {
		chunk := uint64(1) << r.UintN(24)
		cases = append(cases, sc{r.Uint64N(300) * chunk / 7, chunk})
	}
	for _, c := range cases {
		f := makeFixed(r, c.size, c.chunk)
		raw := f.Encode()
		if len(raw) != HeaderSize+32*len(f.Digests) {
			t.Fatalf("size %d chunk %d: encoded %d bytes", c.size, c.chunk, len(raw))
		}
		if !bytes.Equal(raw[80:HeaderSize], make([]byte, HeaderSize-80)) {
			t.Fatalf("reserved header bytes not zero")
		}
		g, err := ParseFixed(raw)
		if err != nil {
			t.Fatalf("size %d chunk %d: %v", c.size, c.chunk, err)
		}
		if g.UUID != f.UUID || g.Ctime != f.Ctime || g.Csum != f.Csum || g.Size != f.Size ||
			g.ChunkSize != f.ChunkSize || !slices.Equal(g.Digests, f.Digests) {
			t.Fatalf("size %d chunk %d: round trip mismatch", c.size, c.chunk)
		}
		if g.ComputeCsum() != g.Csum {
			t.Fatalf("recomputed csum differs from header")
		}
		checkFixedRanges(t, g)
	}
}

func TestFixedCsumFormula(t *testing.T) {
	r := newRand(2)
	f := makeFixed(r, 10*4096+17, 4096)
	var cat []byte
	for _, d := range f.Digests {
		cat = append(cat, d[:]...)
	}
	if want := sha256.Sum256(cat); f.ComputeCsum() != want {
		t.Fatalf("ComputeCsum != SHA-256(digests)")
	}
	empty := &Fixed{ChunkSize: 4096}
	if empty.ComputeCsum() != sha256.Sum256(nil) {
		t.Fatalf("empty csum != SHA-256(\"\")")
	}
	// Encode fills in the computed csum, ignoring the Csum field.
	f.Csum = [32]byte{1, 2, 3}
	raw := f.Encode()
	want := sha256.Sum256(cat)
	if !bytes.Equal(raw[32:64], want[:]) {
		t.Fatalf("Encode did not fill in the computed csum")
	}
}

func TestFixedCorrupt(t *testing.T) {
	r := newRand(3)
	good := makeFixed(r, 5*4096+100, 4096).Encode() // 6 digests

	withU64 := func(off int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	badMagic := bytes.Clone(good)
	badMagic[3] ^= 0xff
	didxMagic := bytes.Clone(good)
	m := DynamicMagic()
	copy(didxMagic, m[:])

	for _, tc := range []struct {
		name, msg string
		raw       []byte
	}{
		{"empty", "too small", nil},
		{"short header", "too small", good[:HeaderSize-1]},
		{"bad magic", "magic", badMagic},
		{"didx magic", "magic", didxMagic},
		{"chunk size zero", "power of two", withU64(offChunkSize, 0)},
		{"chunk size 3", "power of two", withU64(offChunkSize, 3)},
		{"chunk size 4097", "power of two", withU64(offChunkSize, 4097)},
		{"chunk size 2^63+1", "power of two", withU64(offChunkSize, 1<<63+1)},
		{"missing digest", "file size", good[:len(good)-32]},
		{"extra digest", "file size", append(bytes.Clone(good), make([]byte, 32)...)},
		{"trailing partial digest", "file size", append(bytes.Clone(good), 1, 2, 3)},
		{"truncated digest", "file size", good[:len(good)-5]},
		{"header only", "file size", good[:HeaderSize]},
		{"size too big", "file size", withU64(offSize, 6*4096+1)},
		{"size too small", "file size", withU64(offSize, 5*4096)},
		{"huge size chunk 1", "file size", withU64(offSize, ^uint64(0))},
		{"huge size big chunk", "file size", withU64(offSize, ^uint64(0)-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFixed(tc.raw)
			if err == nil {
				t.Fatalf("accepted: %+v", f)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "fixed index") {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}

	// Sanity: the unmodified file parses, and a short last chunk is fine.
	if _, err := ParseFixed(good); err != nil {
		t.Fatal(err)
	}
	// size == 0 with a power-of-two chunk size and no digests is valid.
	if f, err := ParseFixed(withU64(offSize, 0)[:HeaderSize]); err != nil || len(f.Digests) != 0 {
		t.Fatalf("empty fixed index: %v", err)
	}
}

func TestFixedParseDoesNotRetainInput(t *testing.T) {
	r := newRand(4)
	raw := makeFixed(r, 3*4096, 4096).Encode()
	f, err := ParseFixed(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := f.Digests[0]
	clear(raw)
	if f.Digests[0] != want {
		t.Fatal("parsed index aliases the input buffer")
	}
}

func TestFixedAllocs(t *testing.T) {
	r := newRand(5)
	raw := makeFixed(r, 100_000*4096-1, 4096).Encode()
	if n := testing.AllocsPerRun(5, func() {
		if _, err := ParseFixed(raw); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("ParseFixed of 100k digests: %v allocations, want <= 2", n)
	}
	f, _ := ParseFixed(raw)
	if n := testing.AllocsPerRun(100, func() { f.ChunkAt(123456789) }); n != 0 {
		t.Errorf("Fixed.ChunkAt allocates %v times", n)
	}
}
