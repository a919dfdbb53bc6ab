package demo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"math/rand/v2"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/manifest"
	"pbsfs/pxar/encoder"
)

// Content-defined chunking of archive streams: a boundary where a gear
// rolling hash (as in FastCDC) has its top bits zero (they depend on the
// last 64 bytes), at least min and at most max bytes apart. Unchanged
// stretches of two similar streams therefore give the same chunks, which
// consecutive snapshots share as with PBS's client.
type chunking struct {
	min, max int
	mask     uint64
}

// demoChunking: small chunks (top 16 bits: 64 KiB on average past the
// minimum of 16 KiB), so that the demo's small archives have several.
var demoChunking = chunking{min: 16 << 10, max: 256 << 10, mask: (1<<16 - 1) << 48}

// chunkingFor has the proportions of PBS's dynamic chunker for an average
// of avg bytes (a power of two): at least avg/4, at most avg*4, and about
// avg on average (the boundary test adds 2^⌊log2(3avg/4)⌋ past the
// minimum).
func chunkingFor(avg int) (chunking, error) {
	if avg < 64<<10 || avg > 4<<20 || avg&(avg-1) != 0 {
		return chunking{}, fmt.Errorf("chunk size %d: a power of two from 64 KiB to 4 MiB please (as the client's --chunk-size)", avg)
	}
	b := bits.Len(uint(avg*3/4)) - 1
	return chunking{min: avg / 4, max: avg * 4, mask: (1<<b - 1) << (64 - b)}, nil
}

type gearTable [256]uint64

func newGearTable() *gearTable {
	var g gearTable
	rng := rand.New(rand.NewPCG(0x9ea4, 0xcdc))
	for i := range g {
		g[i] = rng.Uint64()
	}
	return &g
}

// cut returns the length of the chunk at the start of data; with final
// false it returns 0 when data is too short to decide.
func (g *gearTable) cut(c chunking, data []byte, final bool) int {
	if len(data) < c.max && !final {
		return 0
	}
	n := min(len(data), c.max)
	var h uint64
	for i := c.min; i < n; i++ {
		h = h<<1 + g[data[i]]
		if h&c.mask == 0 {
			return i + 1
		}
	}
	return n
}

// cutChunks splits a whole stream into chunks.
func cutChunks(data []byte) [][]byte {
	g := newGearTable()
	var chunks [][]byte
	for len(data) > 0 {
		n := g.cut(demoChunking, data, true)
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	return chunks
}

// chunkWriter cuts the stream written to it into chunks while it is
// written, stores each with store and builds the dynamic index: memory
// stays bounded by maxChunk plus one write.
type chunkWriter struct {
	name  string
	gear  *gearTable
	c     chunking
	store func([]byte) ([32]byte, error)
	buf   []byte
	dx    index.Dynamic
	end   uint64
	err   error
}

func newChunkWriter(name string, uuid [16]byte, ctime int64, store func([]byte) ([32]byte, error)) *chunkWriter {
	return &chunkWriter{name: name, gear: newGearTable(), c: demoChunking, store: store, dx: index.Dynamic{UUID: uuid, Ctime: ctime}}
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	w.flush(false)
	return len(p), w.err
}

func (w *chunkWriter) flush(final bool) {
	off := 0
	for w.err == nil && off < len(w.buf) {
		n := w.gear.cut(w.c, w.buf[off:], final)
		if n == 0 {
			break
		}
		d, err := w.store(w.buf[off : off+n])
		if err != nil {
			w.err = fmt.Errorf("index %s: %w", w.name, err)
			return
		}
		w.end += uint64(n)
		w.dx.Entries = append(w.dx.Entries, index.DynamicEntry{End: w.end, Digest: d})
		off += n
	}
	w.buf = append(w.buf[:0], w.buf[off:]...)
}

// finish stores the last chunks and returns the manifest entry and the
// .didx file.
func (w *chunkWriter) finish(encrypt bool) (manifest.FileInfo, []byte, error) {
	w.flush(true)
	if w.err != nil {
		return manifest.FileInfo{}, nil, w.err
	}
	csum, size := w.dx.ComputeCsum()
	return manifest.FileInfo{
		Filename:  w.name,
		CryptMode: cryptMode(encrypt),
		Csum:      hex.EncodeToString(csum[:]),
		Size:      size,
	}, w.dx.Encode(), nil
}

// FileArchive is a file archive for WriteFileArchive.
type FileArchive struct {
	Name  string        // archive name without extension, e.g. "root"
	Root  *encoder.Node // the tree (encoder.FromDir or built in memory)
	Split bool          // NAME.mpxar.didx + NAME.ppxar.didx instead of NAME.pxar.didx
	Ctime int64         // index creation time (the backup time)
	// Crypt encrypts the chunks when not nil (manifest.NewCryptConfig).
	Crypt *manifest.CryptConfig
	// ChunkSize is the average chunk size as PBS's client's --chunk-size
	// (a power of two from 64 KiB to 4 MiB; the client's default is
	// 4 MiB); 0 = the demo's small chunks (about 80 KiB).
	ChunkSize int
}

// WriteFileArchive encodes a file archive into st's chunk store and returns
// the manifest entries and index files to pass to Store.WriteSnapshot
// (after the snapshot's other files): NAME.pxar.didx and, as the client
// writes it in its default mode, catalog.pcat1.didx; or, split,
// NAME.mpxar.didx and NAME.ppxar.didx (no catalog). Streams are cut into
// content-defined chunks while they are encoded, so memory stays bounded
// whatever the archive's size (file contents given by encoder.Node.Open
// are streamed). Index UUIDs derive from the name and time.
func WriteFileArchive(st *datastore.Store, a FileArchive) ([]manifest.FileInfo, map[string][]byte, error) {
	store := func(data []byte) ([32]byte, error) { return st.InsertChunk(data, a.Crypt) }
	return writeFileArchive(a, store, func(file string) [16]byte {
		h := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte(file), uint64(a.Ctime)))
		return [16]byte(h[:16])
	})
}

func writeFileArchive(a FileArchive, store func([]byte) ([32]byte, error), uuid func(file string) [16]byte) ([]manifest.FileInfo, map[string][]byte, error) {
	c := demoChunking
	if a.ChunkSize != 0 {
		var err error
		if c, err = chunkingFor(a.ChunkSize); err != nil {
			return nil, nil, fmt.Errorf("demo: archive %s: %w", a.Name, err)
		}
	}
	var writers []*chunkWriter
	stream := func(file string) *chunkWriter {
		w := newChunkWriter(file, uuid(file), a.Ctime, store)
		w.c = c
		writers = append(writers, w)
		return w
	}
	if a.Split {
		meta, payload := stream(a.Name+".mpxar.didx"), stream(a.Name+".ppxar.didx")
		if err := encoder.WriteSplit(meta, payload, a.Root, encoder.SplitOptions{}); err != nil {
			return nil, nil, fmt.Errorf("demo: split archive %s: %w", a.Name, err)
		}
	} else {
		pxarName := a.Name + ".pxar.didx"
		if err := encoder.WriteV1(stream(pxarName), a.Root); err != nil {
			return nil, nil, fmt.Errorf("demo: archive %s: %w", pxarName, err)
		}
		arch := encoder.CatalogArchive{Name: pxarName, Root: a.Root}
		if err := encoder.WriteCatalog(stream("catalog.pcat1.didx"), arch); err != nil {
			return nil, nil, fmt.Errorf("demo: catalog: %w", err)
		}
	}
	var infos []manifest.FileInfo
	files := map[string][]byte{}
	for _, w := range writers {
		info, raw, err := w.finish(a.Crypt != nil)
		if err != nil {
			return nil, nil, fmt.Errorf("demo: %w", err)
		}
		infos = append(infos, info)
		files[info.Filename] = raw
	}
	return infos, files, nil
}
