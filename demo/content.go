package demo

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/manifest"
)

// builder produces archive files (blobs, index files) and stores the chunks
// they reference with the datastore's chunk writer.
type builder struct {
	st    *datastore.Store
	rng   *rand.Rand
	crypt *manifest.CryptConfig // for encrypted files (the demo key)

	chunks     map[[32]byte]bool    // chunk files already present
	zeroDigest map[zeroKey][32]byte // digest cache for all-zero chunks
	shared     map[string][][]byte  // content shared by a group's snapshots

	// statistics of the snapshot being built, for chunk_upload_stats
	stats uploadStats
}

type zeroKey struct {
	size    uint64
	encrypt bool
}

type uploadStats struct {
	Count, Duplicates, Size, CompressedSize uint64
}

func newBuilder(st *datastore.Store, seed uint64) (*builder, error) {
	cc, err := manifest.NewCryptConfig(DemoKey())
	if err != nil {
		return nil, fmt.Errorf("demo key: %w", err)
	}
	return &builder{
		st:         st,
		rng:        rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		crypt:      cc,
		chunks:     make(map[[32]byte]bool),
		zeroDigest: make(map[zeroKey][32]byte),
	}, nil
}

// fileSet collects the files of one snapshot in manifest order.
type fileSet struct {
	infos []manifest.FileInfo
	data  map[string][]byte
}

func (fs *fileSet) add(info manifest.FileInfo, raw []byte) {
	if fs.data == nil {
		fs.data = make(map[string][]byte)
	}
	fs.infos = append(fs.infos, info)
	fs.data[info.Filename] = raw
}

func cryptMode(encrypt bool) string {
	if encrypt {
		return manifest.CryptEncrypt
	}
	return manifest.CryptNone
}

func (b *builder) uuid() [16]byte {
	var u [16]byte
	for i := 0; i < len(u); i += 8 {
		v := b.rng.Uint64()
		for j := 0; j < 8; j++ {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

// cryptFor returns the demo key's configuration for encrypted files, nil
// for plain ones.
func (b *builder) cryptFor(encrypt bool) *manifest.CryptConfig {
	if encrypt {
		return b.crypt
	}
	return nil
}

// blob returns a .blob archive file and its manifest entry; size and csum
// describe the raw file bytes (§2.1).
func (b *builder) blob(name string, content []byte, encrypt bool) (manifest.FileInfo, []byte, error) {
	info, raw, err := datastore.BuildBlob(name, content, b.cryptFor(encrypt))
	if err != nil {
		return manifest.FileInfo{}, nil, fmt.Errorf("blob %s: %w", name, err)
	}
	return info, raw, nil
}

// chunk stores data as a chunk (if not present yet) and returns its digest.
func (b *builder) chunk(data []byte, encrypt bool) ([32]byte, error) {
	cc := b.cryptFor(encrypt)
	d := manifest.ChunkDigest(data, cc)
	b.stats.Count++
	b.stats.Size += uint64(len(data))
	if b.chunks[d] {
		b.stats.Duplicates++
		return d, nil
	}
	if _, err := b.st.InsertChunk(data, cc); err != nil {
		return d, fmt.Errorf("chunk: %w", err)
	}
	if fi, err := os.Stat(filepath.Join(b.st.Path(), filepath.FromSlash(index.ChunkPath(d)))); err == nil {
		b.stats.CompressedSize += uint64(fi.Size())
	}
	b.chunks[d] = true
	return d, nil
}

// zeroChunk stores (once) and returns the digest of an all-zero chunk.
func (b *builder) zeroChunk(size uint64, encrypt bool) ([32]byte, error) {
	k := zeroKey{size, encrypt}
	if d, ok := b.zeroDigest[k]; ok {
		b.stats.Count++
		b.stats.Size += size
		b.stats.Duplicates++
		return d, nil
	}
	d, err := b.chunk(make([]byte, size), encrypt)
	if err == nil {
		b.zeroDigest[k] = d
	}
	return d, err
}

// fixed builds a .fidx for a disk image of the given size. content maps
// chunk numbers to their leading bytes (the rest of each chunk is zero);
// chunks not in content are all zero, as on a sparse virtual disk.
func (b *builder) fixed(name string, ctime int64, size, chunkSize uint64, content map[int][]byte, encrypt bool) (manifest.FileInfo, []byte, error) {
	n := int((size + chunkSize - 1) / chunkSize)
	fx := &index.Fixed{UUID: b.uuid(), Ctime: ctime, Size: size, ChunkSize: chunkSize, Digests: make([][32]byte, n)}
	for i := 0; i < n; i++ {
		clen := min(chunkSize, size-uint64(i)*chunkSize)
		var (
			d   [32]byte
			err error
		)
		if c, ok := content[i]; ok {
			data := make([]byte, clen)
			copy(data, c)
			d, err = b.chunk(data, encrypt)
		} else {
			d, err = b.zeroChunk(clen, encrypt)
		}
		if err != nil {
			return manifest.FileInfo{}, nil, fmt.Errorf("index %s: %w", name, err)
		}
		fx.Digests[i] = d
	}
	csum := fx.ComputeCsum()
	return manifest.FileInfo{
		Filename:  name,
		CryptMode: cryptMode(encrypt),
		Csum:      hex.EncodeToString(csum[:]),
		Size:      size,
	}, fx.Encode(), nil
}

// dynamic builds a .didx whose stream is the concatenation of parts, one
// chunk per part.
func (b *builder) dynamic(name string, ctime int64, parts [][]byte, encrypt bool) (manifest.FileInfo, []byte, error) {
	dx := &index.Dynamic{UUID: b.uuid(), Ctime: ctime}
	var end uint64
	for _, p := range parts {
		if len(p) == 0 {
			return manifest.FileInfo{}, nil, errors.New("dynamic index: empty chunk")
		}
		d, err := b.chunk(p, encrypt)
		if err != nil {
			return manifest.FileInfo{}, nil, fmt.Errorf("index %s: %w", name, err)
		}
		end += uint64(len(p))
		dx.Entries = append(dx.Entries, index.DynamicEntry{End: end, Digest: d})
	}
	csum, size := dx.ComputeCsum()
	return manifest.FileInfo{
		Filename:  name,
		CryptMode: cryptMode(encrypt),
		Csum:      hex.EncodeToString(csum[:]),
		Size:      size,
	}, dx.Encode(), nil
}

// Text generators. They only need to look plausible and compress well.

var words = strings.Fields(`alpha backup bridge cache config daemon debian disk
etc home index kernel local log mail nginx node opt postgres proxmox root run
service share srv ssl storage sync systemd tmp usr var www zfs`)

// textBlock returns about n bytes of path-like text lines.
func (b *builder) textBlock(n int, prefix string) []byte {
	var sb strings.Builder
	sb.Grow(n + 64)
	for sb.Len() < n {
		sb.WriteString(prefix)
		for k := 0; k < 2+b.rng.IntN(4); k++ {
			sb.WriteByte('/')
			sb.WriteString(words[b.rng.IntN(len(words))])
		}
		fmt.Fprintf(&sb, " %d %o\n", b.rng.IntN(1<<20), 0o100644)
	}
	return []byte(sb.String()[:n])
}

// diskHeader returns the first bytes of a virtual disk: a protective MBR and
// a GPT header signature, followed by a little partition data.
func (b *builder) diskHeader(label string) []byte {
	h := make([]byte, 64<<10)
	h[446+4] = 0xee // protective MBR partition type
	h[510], h[511] = 0x55, 0xaa
	copy(h[512:], "EFI PART")
	copy(h[1024:], label)
	for i := 4096; i < 8192; i++ {
		h[i] = byte(b.rng.Uint32())
	}
	copy(h[32<<10:], b.textBlock(16<<10, "/"+label))
	return h
}

// diskData returns a few KiB of leading data for an otherwise zero chunk.
func (b *builder) diskData(tag string) []byte {
	d := b.textBlock(4<<10+b.rng.IntN(28<<10), "/"+tag)
	for i := 0; i < 512; i++ {
		d[b.rng.IntN(len(d))] = byte(b.rng.Uint32())
	}
	return d
}

func (b *builder) macAddr() string {
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", b.rng.IntN(256), b.rng.IntN(256), b.rng.IntN(256))
}

func (b *builder) uuidString() string {
	u := b.uuid()
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
