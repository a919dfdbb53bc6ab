package demo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/manifest"
	"pbsfs/pxar/encoder"
)

// Content-defined chunking of archive streams: a boundary where a gear
// rolling hash (as in FastCDC) has its top 16 bits zero (they depend on the
// last 64 bytes), at least minChunk and at most maxChunk bytes apart
// (64 KiB on average past the minimum). Unchanged stretches of two similar
// streams therefore give the same chunks, which consecutive snapshots share
// as with PBS's client (whose chunks are larger: 4 MiB on average).
const (
	minChunk = 16 << 10
	maxChunk = 256 << 10
	cdcMask  = (1<<16 - 1) << 48
)

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
func (g *gearTable) cut(data []byte, final bool) int {
	if len(data) < maxChunk && !final {
		return 0
	}
	n := min(len(data), maxChunk)
	var h uint64
	for i := minChunk; i < n; i++ {
		h = h<<1 + g[data[i]]
		if h&cdcMask == 0 {
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
		n := g.cut(data, true)
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
	store func([]byte) ([32]byte, error)
	buf   []byte
	dx    index.Dynamic
	end   uint64
	err   error
}

func newChunkWriter(name string, uuid [16]byte, ctime int64, store func([]byte) ([32]byte, error)) *chunkWriter {
	return &chunkWriter{name: name, gear: newGearTable(), store: store, dx: index.Dynamic{UUID: uuid, Ctime: ctime}}
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
		n := w.gear.cut(w.buf[off:], final)
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
	var writers []*chunkWriter
	stream := func(file string) *chunkWriter {
		w := newChunkWriter(file, uuid(file), a.Ctime, store)
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
