package manifest

import (
	"bytes"
	"errors"
	"testing"
)

// countingBuffers lends heap buffers and records which are out.
type countingBuffers struct {
	out map[*byte]int // first byte → capacity
	t   *testing.T
}

func (c *countingBuffers) Get(n int) ([]byte, error) {
	b := make([]byte, 0, n)
	c.out[&b[:1][0]] = n
	return b, nil
}

func (c *countingBuffers) Put(b []byte) {
	p := &b[:1][0]
	if _, ok := c.out[p]; !ok {
		c.t.Errorf("Put of a buffer that was not lent (or twice)")
	}
	delete(c.out, p)
}

// DecodeInto hands out exactly the buffer holding the data and gives back
// every other one, for each kind of blob and for failures.
func TestDecodeIntoBuffers(t *testing.T) {
	key, err := NewCryptConfig(seqKey())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("chunk data "), 5000)
	plain, _ := EncodeBlob(data, false)
	compressed, _ := EncodeBlob(data, true)
	encrypted, _ := key.EncodeBlob(data, false)
	encCompressed, _ := key.EncodeBlob(data, true)
	badTag := append([]byte(nil), encCompressed...)
	badTag[30] ^= 1 // in the tag: the CRC still matches
	cases := []struct {
		name    string
		raw     []byte
		key     *CryptConfig
		aliases bool // data is within the payload, no buffer lent
		err     error
	}{
		{"plain", plain, nil, true, nil},
		{"compressed", compressed, nil, false, nil},
		{"encrypted", encrypted, key, false, nil},
		{"encrypted compressed", encCompressed, key, false, nil},
		{"encrypted without key", encCompressed, nil, false, ErrEncrypted},
		{"bad tag", badTag, key, false, ErrDecrypt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBlob(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			bufs := &countingBuffers{out: map[*byte]int{}, t: t}
			got, buf, err := b.DecodeInto(tc.key, bufs)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if len(bufs.out) != 0 {
					t.Errorf("%d buffers kept after a failure", len(bufs.out))
				}
				return
			}
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("decode: %v", err)
			}
			if tc.aliases {
				if buf != nil || len(bufs.out) != 0 {
					t.Errorf("uncompressed plain blob used buffers")
				}
				return
			}
			if len(bufs.out) != 1 || buf == nil || !sameArray(got, buf) {
				t.Fatalf("%d buffers out, want only the one holding the data", len(bufs.out))
			}
			bufs.Put(buf)
		})
	}
	// Corrupt zstd: the output buffer goes back.
	bad := append([]byte(nil), compressed...)
	for i := HeaderSize + 20; i < len(bad); i++ {
		bad[i] = 0xff
	}
	b := &Blob{Magic: magicCompressed, Payload: bad[HeaderSize:]}
	bufs := &countingBuffers{out: map[*byte]int{}, t: t}
	if _, _, err := b.DecodeInto(nil, bufs); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt zstd: %v", err)
	}
	if len(bufs.out) != 0 {
		t.Errorf("corrupt zstd: %d buffers kept", len(bufs.out))
	}
}
