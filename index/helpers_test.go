package index

import (
	"math/rand/v2"
)

// newRand returns a deterministic generator so failures are reproducible.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

func randDigest(r *rand.Rand) (d [32]byte) {
	for i := 0; i < 32; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			d[i+j] = byte(v >> (8 * j))
		}
	}
	return d
}

func randUUID(r *rand.Rand) (u [16]byte) {
	d := randDigest(r)
	copy(u[:], d[:16])
	return u
}

// makeFixed builds a consistent fixed index for the given size and chunk size.
func makeFixed(r *rand.Rand, size, chunkSize uint64) *Fixed {
	f := &Fixed{
		UUID:      randUUID(r),
		Ctime:     r.Int64(),
		Size:      size,
		ChunkSize: chunkSize,
		Digests:   make([][32]byte, fixedCount(size, chunkSize)),
	}
	for i := range f.Digests {
		f.Digests[i] = randDigest(r)
	}
	f.Csum = f.ComputeCsum()
	return f
}

// makeDynamic builds a dynamic index with n entries whose chunk lengths are
// drawn from [0, maxLen]; zero-length chunks are legal (ends never decrease).
func makeDynamic(r *rand.Rand, n int, maxLen uint64) *Dynamic {
	d := &Dynamic{
		UUID:    randUUID(r),
		Ctime:   r.Int64(),
		Entries: make([]DynamicEntry, n),
	}
	var end uint64
	for i := range d.Entries {
		end += r.Uint64N(maxLen + 1)
		d.Entries[i] = DynamicEntry{End: end, Digest: randDigest(r)}
	}
	d.Csum, _ = d.ComputeCsum()
	return d
}
