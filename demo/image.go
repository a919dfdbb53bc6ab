package demo

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/manifest"
)

// ImageChunk is the chunk size of WriteImageSnapshot's images: PBS's
// default for fixed indexes, 4 MiB.
const ImageChunk = 4 << 20

// ImageSnapshotTime is the backup time of WriteImageSnapshot's snapshots.
const ImageSnapshotTime = "2024-06-05T14:22:01Z"

// WriteImageSnapshot writes the group vm/<id> (owner root@pam) with one
// snapshot at ImageSnapshotTime whose only archive, drive-scsi0.img.fidx,
// is a disk image of n distinct ImageChunk chunks that look like disk data:
// 64 KiB blocks of text (compresses about 4:1), random bytes (does not
// compress) and sparse blocks, mixed in every chunk. The image depends on n
// only. It returns the parsed index and the image. The benchmarks of
// archive reads (integration, integration/bench) use it.
func WriteImageSnapshot(st *datastore.Store, id string, n int) (*index.Fixed, []byte, error) {
	img := diskImage(n)
	g := datastore.Group{Type: "vm", ID: id}
	if err := st.CreateGroup(g, "root@pam"); err != nil {
		return nil, nil, err
	}
	fi, fidx, err := st.BuildFixedIndex("drive-scsi0.img.fidx", img, ImageChunk, nil)
	if err != nil {
		return nil, nil, err
	}
	m, err := manifest.New("vm", id, 1717597321, []manifest.FileInfo{fi})
	if err != nil {
		return nil, nil, err
	}
	if err := st.WriteSnapshot(datastore.Snapshot{Group: g, Time: ImageSnapshotTime}, m, map[string][]byte{fi.Filename: fidx}); err != nil {
		return nil, nil, err
	}
	fx, err := index.ParseFixed(fidx)
	if err != nil {
		return nil, nil, err
	}
	return fx, img, nil
}

// diskImage returns n chunks of disk-like data (see WriteImageSnapshot).
func diskImage(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	img := make([]byte, n*ImageChunk)
	for off := 0; off < len(img); off += 64 << 10 {
		blk := img[off : off+64<<10]
		switch rng.IntN(4) {
		case 0, 1: // text
			var b bytes.Buffer
			for b.Len() < len(blk) {
				fmt.Fprintf(&b, "/usr/lib/x86_64-linux-gnu/lib%d.so.%d %08x\n", rng.IntN(1000), rng.IntN(9), rng.Uint32())
			}
			copy(blk, b.Bytes())
		case 2: // random
			for i := 0; i < len(blk); i += 8 {
				v := rng.Uint64()
				for j := range 8 {
					blk[i+j] = byte(v >> (8 * j))
				}
			}
		case 3: // sparse: zeros with a header
			blk[0], blk[1] = byte(off), byte(off>>8)
		}
	}
	return img
}
