package index

import "testing"

const benchEntries = 100_000

func BenchmarkParseDynamic100k(b *testing.B) {
	raw := makeDynamic(newRand(31), benchEntries, 4<<20).Encode()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDynamic(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFixed100k(b *testing.B) {
	raw := makeFixed(newRand(32), benchEntries*(4<<20)-1, 4<<20).Encode()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFixed(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDynamicChunkAt100k(b *testing.B) {
	r := newRand(33)
	d := makeDynamic(r, benchEntries, 4<<20)
	offs := make([]uint64, 4096)
	for i := range offs {
		offs[i] = r.Uint64N(d.Size())
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, _, ok := d.ChunkAt(offs[i&4095]); !ok {
			b.Fatal("offset not found")
		}
		i++
	}
}

func BenchmarkFixedChunkAt100k(b *testing.B) {
	r := newRand(34)
	f := makeFixed(r, benchEntries*(4<<20)-1, 4<<20)
	offs := make([]uint64, 4096)
	for i := range offs {
		offs[i] = r.Uint64N(f.Size)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, _, ok := f.ChunkAt(offs[i&4095]); !ok {
			b.Fatal("offset not found")
		}
		i++
	}
}

func BenchmarkDynamicComputeCsum100k(b *testing.B) {
	d := makeDynamic(newRand(35), benchEntries, 4<<20)
	b.SetBytes(int64(benchEntries * DynamicEntrySize))
	b.ReportAllocs()
	for b.Loop() {
		d.ComputeCsum()
	}
}
