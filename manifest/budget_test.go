package manifest

import (
	"errors"
	"testing"

	"golang.org/x/sync/semaphore"
)

// budgetBuffers is heap memory that counts what it hands out, with a
// Budget.
type budgetBuffers struct {
	*semaphore.Weighted
	got int
}

func (b *budgetBuffers) Get(n int) []byte { b.got += n; return make([]byte, 0, n) }
func (b *budgetBuffers) Put([]byte)       {}

// TestDecodeBudget: a frame whose headers allow 128 MiB of output fails
// with ErrNoMemory before any memory is taken when the budget cannot hold
// that; a good blob decodes within it; reservations are given back.
func TestDecodeBudget(t *testing.T) {
	const limit = 1 << 20
	bufs := &budgetBuffers{Weighted: semaphore.NewWeighted(limit)}
	// No content size, 1024 compressed blocks: up to 128 MiB.
	evil := rleFrame(1024, -1)
	_, _, err := (&Blob{Magic: MagicCompressed(), Payload: evil}).DecodeInto(nil, bufs)
	if !errors.Is(err, ErrNoMemory) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("decode beyond the budget: %v, want ErrNoMemory", err)
	}
	if bufs.got != 0 {
		t.Errorf("%d bytes taken for a refused decode", bufs.got)
	}
	good := rleFrame(3, -1)
	data, _, err := (&Blob{Magic: MagicCompressed(), Payload: good}).DecodeInto(nil, bufs)
	if err != nil || len(data) != 3*maxZstdBlock {
		t.Fatalf("decode within the budget: %d bytes, %v", len(data), err)
	}
	if !bufs.TryAcquire(limit) {
		t.Error("the budget was not given back")
	}
}

// TestDecodeWindowLimit: a frame asking for a window larger than
// maxZstdWindow is refused (ErrTooLarge).
func TestDecodeWindowLimit(t *testing.T) {
	f := rleFrame(1, -1)
	f[5] = byte((24 - 10) << 3) // window 16 MiB
	if _, err := DecodeBlob(blobWith(MagicCompressed(), f)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("16 MiB window: %v, want ErrTooLarge", err)
	}
	f[5] = byte((23 - 10) << 3) // 8 MiB is fine
	if _, err := DecodeBlob(blobWith(MagicCompressed(), f)); err != nil {
		t.Fatalf("8 MiB window: %v", err)
	}
}
