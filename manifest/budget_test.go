package manifest

import (
	"errors"
	"testing"
)

// limitedBuffers refuses buffers larger than limit, as a spent budget does.
type limitedBuffers struct {
	limit int
	got   []int
}

func (b *limitedBuffers) Get(n int) ([]byte, error) {
	b.got = append(b.got, n)
	if n > b.limit {
		return nil, ErrNoMemory
	}
	return make([]byte, 0, n), nil
}
func (b *limitedBuffers) Put([]byte) {}

// TestDecodeRefusedBuffer: a frame whose headers allow 128 MiB of output
// asks for that much before decoding; when its Buffers refuse, the decode
// fails with their error (not as corrupt data); a good blob decodes.
func TestDecodeRefusedBuffer(t *testing.T) {
	bufs := &limitedBuffers{limit: 1 << 20}
	evil := rleFrame(1024, -1) // no content size, 1024 blocks: up to 128 MiB
	_, _, err := (&Blob{Magic: MagicCompressed(), Payload: evil}).DecodeInto(nil, bufs)
	if !errors.Is(err, ErrNoMemory) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("refused buffer: %v, want ErrNoMemory", err)
	}
	if len(bufs.got) != 1 || bufs.got[0] < 1024*maxZstdBlock {
		t.Errorf("buffers asked for: %v, want one of the frame's bound", bufs.got)
	}
	data, _, err := (&Blob{Magic: MagicCompressed(), Payload: rleFrame(3, -1)}).DecodeInto(nil, bufs)
	if err != nil || len(data) != 3*maxZstdBlock {
		t.Fatalf("decode within the limit: %d bytes, %v", len(data), err)
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
