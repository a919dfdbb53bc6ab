package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMagics(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  [8]byte
	}{
		{"Proxmox Backup fixed sized chunk index v1.0", FixedMagic()},
		{"Proxmox Backup dynamic sized chunk index v1.0", DynamicMagic()},
	} {
		sum := sha256.Sum256([]byte(tc.name))
		if !bytes.Equal(sum[:8], tc.got[:]) {
			t.Errorf("magic for %q = % x, want % x", tc.name, tc.got, sum[:8])
		}
	}
}

func TestChunkPath(t *testing.T) {
	var d [32]byte
	for i := range d {
		d[i] = byte(0xa0 + i)
	}
	want := ".chunks/a0a1/" + hex.EncodeToString(d[:])
	if got := ChunkPath(d); got != want {
		t.Errorf("ChunkPath = %q, want %q", got, want)
	}
	if got := ChunkPath([32]byte{}); got != ".chunks/0000/"+strings.Repeat("0", 64) {
		t.Errorf("ChunkPath(zero) = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ChunkPath(d) }); n > 1 {
		t.Errorf("ChunkPath allocates %v times, want <= 1", n)
	}
}

const fixtureName = "backup-client-pxar-data.ppxar.didx"

func readFixture(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", fixtureName))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRealFixture checks the dynamic index written by PBS's own client
// (tests/pxar/ of proxmox/proxmox-backup, see testdata/SOURCE.txt facts).
func TestRealFixture(t *testing.T) {
	raw := readFixture(t)
	if len(raw) != 8096 {
		t.Fatalf("fixture size %d, want 8096", len(raw))
	}
	d, err := ParseDynamic(raw)
	if err != nil {
		t.Fatalf("ParseDynamic: %v", err)
	}
	if len(d.Entries) != 100 {
		t.Errorf("entries = %d, want 100", len(d.Entries))
	}
	if got := hex.EncodeToString(d.UUID[:]); got != "f0ef7665555e417ea6eba00a375ceee0" {
		t.Errorf("uuid = %s", got)
	}
	if d.Ctime != 1715091951 {
		t.Errorf("ctime = %d, want 1715091951", d.Ctime)
	}
	const wantCsum = "e13b71c181693fb7d7b46e2f34aadee48337c6828674820e0924ef940a2cbd20"
	if got := hex.EncodeToString(d.Csum[:]); got != wantCsum {
		t.Errorf("header csum = %s, want %s", got, wantCsum)
	}
	const lastEnd = 104859232
	if d.Size() != lastEnd {
		t.Errorf("Size = %d, want %d", d.Size(), lastEnd)
	}
	csum, size := d.ComputeCsum()
	if csum != d.Csum {
		t.Errorf("recomputed csum %x != header csum %x", csum, d.Csum)
	}
	if size != lastEnd {
		t.Errorf("ComputeCsum size = %d, want %d", size, lastEnd)
	}

	// Every byte of the header past the fields must be zero, so Encode must
	// reproduce the file exactly.
	if enc := d.Encode(); !bytes.Equal(enc, raw) {
		t.Errorf("Encode does not reproduce the fixture byte for byte")
	}

	// ChunkAt at the boundaries of the first and last chunk and past the end.
	e0 := d.Entries[0].End
	lastStart := d.Entries[98].End
	for _, tc := range []struct {
		off        uint64
		i          int
		start, end uint64
		ok         bool
	}{
		{0, 0, 0, e0, true},
		{e0 - 1, 0, 0, e0, true},
		{e0, 1, e0, d.Entries[1].End, true},
		{lastStart, 99, lastStart, lastEnd, true},
		{lastEnd - 1, 99, lastStart, lastEnd, true},
		{lastEnd, 0, 0, 0, false},
		{lastEnd + 1, 0, 0, 0, false},
		{^uint64(0), 0, 0, 0, false},
	} {
		i, start, end, ok := d.ChunkAt(tc.off)
		if i != tc.i || start != tc.start || end != tc.end || ok != tc.ok {
			t.Errorf("ChunkAt(%d) = (%d, %d, %d, %v), want (%d, %d, %d, %v)",
				tc.off, i, start, end, ok, tc.i, tc.start, tc.end, tc.ok)
		}
	}
	// Every chunk: its first and last byte map back to it.
	for i := range d.Entries {
		start, end, ok := d.ChunkRange(i)
		if !ok || start >= end {
			t.Fatalf("chunk %d: range [%d,%d) ok=%v", i, start, end, ok)
		}
		for _, off := range []uint64{start, end - 1} {
			if j, s, e, ok := d.ChunkAt(off); !ok || j != i || s != start || e != end {
				t.Errorf("ChunkAt(%d) = (%d, %d, %d, %v), want chunk %d [%d,%d)", off, j, s, e, ok, i, start, end)
			}
		}
	}

	// The fixture is a .didx: the fixed parser must reject it as corrupt.
	if _, err := ParseFixed(raw); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ParseFixed(didx) = %v, want ErrCorrupt", err)
	}
}
