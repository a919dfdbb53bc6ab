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

// linearChunkAt is the obviously-correct reference for Dynamic.ChunkAt.
func linearChunkAt(d *Dynamic, off uint64) (int, uint64, uint64, bool) {
	var start uint64
	for i, e := range d.Entries {
		if off < e.End {
			return i, start, e.End, true
		}
		start = e.End
	}
	return 0, 0, 0, false
}

func TestDynamicRoundTrip(t *testing.T) {
	r := newRand(11)
	for iter := range 300 {
		n := int(r.UintN(200))
		maxLen := uint64(1) << r.UintN(23)
		if iter%10 == 0 {
			maxLen = 3 // many zero-length chunks
		}
		d := makeDynamic(r, n, maxLen)
		raw := d.Encode()
		if len(raw) != HeaderSize+40*n {
			t.Fatalf("encoded %d bytes for %d entries", len(raw), n)
		}
		if !bytes.Equal(raw[64:HeaderSize], make([]byte, HeaderSize-64)) {
			t.Fatalf("reserved header bytes not zero")
		}
		g, err := ParseDynamic(raw)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		if g.UUID != d.UUID || g.Ctime != d.Ctime || g.Csum != d.Csum || !slices.Equal(g.Entries, d.Entries) {
			t.Fatalf("iter %d: round trip mismatch", iter)
		}
		csum, size := g.ComputeCsum()
		if csum != g.Csum || size != g.Size() {
			t.Fatalf("iter %d: ComputeCsum mismatch", iter)
		}
		if !bytes.Equal(g.Encode(), raw) {
			t.Fatalf("iter %d: re-encode differs", iter)
		}
		// ChunkAt against the linear reference at every boundary and a few
		// random offsets.
		offs := []uint64{0, g.Size(), g.Size() + 1, ^uint64(0)}
		for _, e := range g.Entries {
			offs = append(offs, e.End, e.End-1, e.End+1)
		}
		for range 20 {
			offs = append(offs, r.Uint64N(g.Size()+2))
		}
		for _, off := range offs {
			i, s, e, ok := g.ChunkAt(off)
			wi, ws, we, wok := linearChunkAt(g, off)
			if i != wi || s != ws || e != we || ok != wok {
				t.Fatalf("iter %d: ChunkAt(%d) = (%d,%d,%d,%v), want (%d,%d,%d,%v)",
					iter, off, i, s, e, ok, wi, ws, we, wok)
			}
			if ok && (e <= s || off < s || off >= e) {
				t.Fatalf("ChunkAt(%d) returned bad range [%d,%d)", off, s, e)
			}
		}
	}
}

func TestDynamicChunkRange(t *testing.T) {
	d := &Dynamic{Entries: []DynamicEntry{{End: 10}, {End: 10}, {End: 25}}}
	for _, tc := range []struct {
		i          int
		start, end uint64
		ok         bool
	}{
		{-1, 0, 0, false}, {0, 0, 10, true}, {1, 10, 10, true}, {2, 10, 25, true}, {3, 0, 0, false},
	} {
		s, e, ok := d.ChunkRange(tc.i)
		if s != tc.start || e != tc.end || ok != tc.ok {
			t.Errorf("ChunkRange(%d) = (%d,%d,%v)", tc.i, s, e, ok)
		}
	}
	// The empty chunk 1 is skipped: offset 10 is in chunk 2.
	if i, s, e, ok := d.ChunkAt(10); i != 2 || s != 10 || e != 25 || !ok {
		t.Errorf("ChunkAt(10) = (%d,%d,%d,%v)", i, s, e, ok)
	}
	empty := &Dynamic{}
	if _, _, _, ok := empty.ChunkAt(0); ok || empty.Size() != 0 {
		t.Errorf("empty index: ChunkAt ok or Size != 0")
	}
}

func TestDynamicCsumFormula(t *testing.T) {
	r := newRand(12)
	for _, n := range []int{0, 1, 127, 128, 129, 1000} {
		d := makeDynamic(r, n, 1<<20)
		var cat []byte
		for _, e := range d.Entries {
			cat = binary.LittleEndian.AppendUint64(cat, e.End)
			cat = append(cat, e.Digest[:]...)
		}
		csum, size := d.ComputeCsum()
		if csum != sha256.Sum256(cat) {
			t.Fatalf("n=%d: ComputeCsum != SHA-256(end_le||digest...)", n)
		}
		if size != d.Size() {
			t.Fatalf("n=%d: size %d != %d", n, size, d.Size())
		}
		d.Csum = [32]byte{9}
		raw := d.Encode()
		if !bytes.Equal(raw[32:64], csum[:]) {
			t.Fatalf("Encode did not fill in the computed csum")
		}
	}
}

func TestDynamicCorrupt(t *testing.T) {
	r := newRand(13)
	good := makeDynamic(r, 10, 1<<16).Encode()

	setEnd := func(i int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint64(b[HeaderSize+40*i:], v)
		return b
	}
	end := func(i int) uint64 { return binary.LittleEndian.Uint64(good[HeaderSize+40*i:]) }
	badMagic := bytes.Clone(good)
	badMagic[0] ^= 1
	fidxMagic := bytes.Clone(good)
	m := FixedMagic()
	copy(fidxMagic, m[:])

	type corruptCase struct {
		name, msg string
		raw       []byte
	}
	cases := []corruptCase{
		{"empty", "too small", nil},
		{"short header", "too small", good[:100]},
		{"header minus one", "too small", good[:HeaderSize-1]},
		{"bad magic", "magic", badMagic},
		{"fidx magic", "magic", fidxMagic},
		{"ends backwards at 1", "below the previous", setEnd(1, end(0)-1)},
		{"ends backwards at last", "below the previous", setEnd(9, end(8)-1)},
		{"ends backwards to zero", "below the previous", setEnd(5, 0)},
		{"first end huge", "below the previous", setEnd(0, ^uint64(0))},
	}
	for k := 1; k < 40; k += 7 {
		cases = append(cases,
			corruptCase{"trailing partial entry", "file size", append(bytes.Clone(good), make([]byte, k)...)},
			corruptCase{"truncated entry", "file size", good[:len(good)-k]},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDynamic(tc.raw)
			if err == nil {
				t.Fatalf("accepted: %d entries", len(d.Entries))
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "dynamic index") {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
	// Equal consecutive ends (an empty chunk) are allowed, and so is a bare header.
	if _, err := ParseDynamic(setEnd(1, end(0))); err != nil {
		t.Errorf("equal ends rejected: %v", err)
	}
	if d, err := ParseDynamic(good[:HeaderSize]); err != nil || len(d.Entries) != 0 {
		t.Errorf("header-only index: %v", err)
	}
}

func TestDynamicParseDoesNotRetainInput(t *testing.T) {
	raw := makeDynamic(newRand(14), 3, 100).Encode()
	d, err := ParseDynamic(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := d.Entries[0]
	clear(raw)
	if d.Entries[0] != want {
		t.Fatal("parsed index aliases the input buffer")
	}
}

func TestDynamicAllocs(t *testing.T) {
	d := makeDynamic(newRand(15), 100_000, 4<<20)
	raw := d.Encode()
	if n := testing.AllocsPerRun(5, func() {
		if _, err := ParseDynamic(raw); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("ParseDynamic of 100k entries: %v allocations, want <= 2", n)
	}
	if n := testing.AllocsPerRun(100, func() { d.ChunkAt(d.Size() / 3) }); n != 0 {
		t.Errorf("Dynamic.ChunkAt allocates %v times", n)
	}
	if n := testing.AllocsPerRun(5, func() { d.ComputeCsum() }); n > 3 {
		t.Errorf("ComputeCsum allocates %v times, want <= 3", n)
	}
}
