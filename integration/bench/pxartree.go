package main

// The generated tree of the pxar workloads: a deterministic root-file-
// system-like tree of regular files, directories and symlinks, described by
// a few numbers and expanded one directory at a time, so that a tree of a
// million entries is encoded (encoder.Node.List) and extracted without
// ever being held in memory; file contents are generated while they are
// read.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// treeSpec sizes a generated tree.
type treeSpec struct {
	files int   // regular files
	dirs  int   // directories besides the root
	bytes int64 // total file content, approximately (sizes are drawn)
	seed  uint64
}

func (s treeSpec) String() string {
	return fmt.Sprintf("%s files in %s directories, ~%s", thousands(s.files), thousands(s.dirs), humanBytes(s.bytes))
}

// key names the spec in store directory names (for --stores reuse).
func (s treeSpec) key() string { return fmt.Sprintf("%d-%d-%d-%d", s.files, s.dirs, s.bytes, s.seed) }

const (
	blockSize = 4096
	// sizeSigma is the spread of the log-normal file sizes: with 1.8 the
	// median file is a fifth of the mean and the largest 1 % hold about
	// half of the bytes, much like a Debian root file system.
	sizeSigma = 1.8
	// linkEvery: one symlink per this many files of a directory.
	linkEvery = 20
	treeEpoch = 1717200000 // mtimes are spread over the year before
)

// genTree is the expanded description: for every directory its parent's
// child directories and its number of files; everything else derives from
// (seed, index).
type genTree struct {
	spec      treeSpec
	subdirs   [][]int32 // directory i's child directories (0 = the root)
	nfiles    []int32
	firstFile []int64 // global index of directory i's first file
	mu        float64 // log-normal location of the sizes
	maxSize   int64
	corpus    []byte // text that text files are cut from
}

func newGenTree(s treeSpec) (*genTree, error) {
	if s.files < 1 || s.dirs < 0 || s.bytes < 0 {
		return nil, fmt.Errorf("tree: %d files, %d directories, %d bytes", s.files, s.dirs, s.bytes)
	}
	rng := rand.New(rand.NewPCG(s.seed, 0x7ee))
	n := s.dirs + 1
	g := &genTree{spec: s, subdirs: make([][]int32, n), nfiles: make([]int32, n), firstFile: make([]int64, n)}
	// Directory i's parent is an earlier one, biased towards the first
	// (shallow, root-like) ones: a few wide directories, long thin paths.
	for i := 1; i < n; i++ {
		u := rng.Float64()
		p := int(float64(i) * u * u)
		g.subdirs[p] = append(g.subdirs[p], int32(i))
	}
	// Files per directory: log-normal weights, so that some directories
	// hold thousands (/usr/bin, /usr/share/...) and most a handful.
	w := make([]float64, n)
	var sum float64
	for i := range w {
		w[i] = math.Exp(1.5 * rng.NormFloat64())
		sum += w[i]
	}
	left := s.files
	for i := range w {
		k := int(math.Floor(w[i] / sum * float64(s.files)))
		k = min(k, left)
		g.nfiles[i] = int32(k)
		left -= k
	}
	for i := 0; left > 0; i = (i + 1) % n {
		g.nfiles[i]++
		left--
	}
	var next int64
	for i := range g.firstFile {
		g.firstFile[i] = next
		next += int64(g.nfiles[i])
	}
	mean := float64(s.bytes) / float64(s.files)
	g.mu = math.Log(math.Max(mean, 1)) - sizeSigma*sizeSigma/2
	g.maxSize = max(s.bytes/50, 64<<10)
	g.corpus = textCorpus(s.seed)
	return g, nil
}

// textCorpus is 1 MiB of word-like text (compresses about as well as
// configuration files and scripts do).
func textCorpus(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x7e47))
	words := make([]string, 2000)
	const letters = "etaoinshrdlcumwfgypbvkjxqz_/.-="
	for i := range words {
		b := make([]byte, 2+rng.IntN(9))
		for j := range b {
			b[j] = letters[min(rng.IntN(len(letters)), rng.IntN(len(letters)))]
		}
		words[i] = string(b)
	}
	out := make([]byte, 0, 1<<20+64)
	for len(out) < 1<<20 {
		out = append(out, words[min(rng.IntN(len(words)), rng.IntN(len(words)))]...)
		if rng.IntN(9) == 0 {
			out = append(out, '\n')
		} else {
			out = append(out, ' ')
		}
	}
	return out[:1<<20]
}

// hash64 mixes seed and values into 64 bits (splitmix64 steps).
func hash64(vals ...uint64) uint64 {
	var h uint64 = 0x9e3779b97f4a7c15
	for _, v := range vals {
		h ^= v + 0x9e3779b97f4a7c15 + h<<6 + h>>2
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

// fileSize is the size of file id.
func (g *genTree) fileSize(id int64) int64 {
	h := hash64(g.spec.seed, 1, uint64(id))
	// Box–Muller from two 32-bit halves.
	u1 := (float64(h>>32) + 0.5) / (1 << 32)
	u2 := float64(uint32(h)) / (1 << 32)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	return min(int64(math.Exp(g.mu+sizeSigma*z)), g.maxSize)
}

// totals counts the tree: entries below the root (directories, files,
// symlinks) and the bytes of all files.
func (g *genTree) totals() (entries int, files int, bytes int64) {
	for i, k := range g.nfiles {
		entries += len(g.subdirs[i]) + int(k) + int(k)/linkEvery
		files += int(k)
		for f := int64(0); f < int64(k); f++ {
			bytes += g.fileSize(g.firstFile[i] + f)
		}
	}
	return entries, files, bytes
}

var fileExts = []string{"", ".so", ".py", ".h", ".conf", ".gz", ".txt", ".pm", ".mo", ".png"}

// root is the archive root: directory 0.
func (g *genTree) root() *encoder.Node { return g.dirNode(0, "") }

func (g *genTree) dirNode(i int32, name string) *encoder.Node {
	h := hash64(g.spec.seed, 2, uint64(i))
	return &encoder.Node{
		Name: name, Mode: pxar.ModeDir | 0o755,
		MtimeSec: treeEpoch - int64(h%(365*86400)), MtimeNsec: uint32(h>>40) % 1e9,
		List: func() ([]*encoder.Node, error) { return g.entries(i), nil },
	}
}

// entries are directory i's children: its subdirectories, its files and
// one symlink per linkEvery files (to a file beside it).
func (g *genTree) entries(i int32) []*encoder.Node {
	k := int64(g.nfiles[i])
	out := make([]*encoder.Node, 0, len(g.subdirs[i])+int(k)+int(k)/linkEvery)
	for _, d := range g.subdirs[i] {
		out = append(out, g.dirNode(d, fmt.Sprintf("d%d", d)))
	}
	for f := int64(0); f < k; f++ {
		out = append(out, g.fileNode(g.firstFile[i]+f))
	}
	for l := int64(0); l < k/linkEvery; l++ {
		out = append(out, &encoder.Node{Name: fmt.Sprintf("l%d", g.firstFile[i]+l), Mode: pxar.ModeSymlink | 0o777,
			MtimeSec: treeEpoch, Symlink: g.fileName(g.firstFile[i] + l*linkEvery)})
	}
	return out
}

func (g *genTree) fileName(id int64) string {
	return fmt.Sprintf("f%d%s", id, fileExts[hash64(g.spec.seed, 3, uint64(id))%uint64(len(fileExts))])
}

func (g *genTree) fileNode(id int64) *encoder.Node {
	h := hash64(g.spec.seed, 4, uint64(id))
	mode := uint64(0o644)
	if h%5 == 0 {
		mode = 0o755
	}
	size := g.fileSize(id)
	return &encoder.Node{
		Name: g.fileName(id), Mode: pxar.ModeRegular | mode,
		MtimeSec: treeEpoch - int64(h%(365*86400)), MtimeNsec: uint32(h>>40) % 1e9,
		Size: uint64(size),
		Open: func() (io.ReadCloser, error) { return g.content(id, size), nil },
	}
}

// content is file id's bytes: text cut from the corpus, or (one file in
// four, like compressed files and images) random bytes; every 4 KiB block
// starts with the file id and block number, so that no two chunks are
// alike.
func (g *genTree) content(id, size int64) io.ReadCloser {
	return &contentReader{g: g, id: id, size: size, random: hash64(g.spec.seed, 5, uint64(id))%4 == 0}
}

type contentReader struct {
	g      *genTree
	id     int64
	size   int64
	off    int64
	random bool
	block  [blockSize]byte
	cached int64 // block number in block, +1 (0 = none)
}

func (c *contentReader) fill(b int64) {
	if c.cached == b+1 {
		return
	}
	c.cached = b + 1
	if c.random || (c.id < 0 && hash64(c.g.spec.seed, 7, uint64(b))%4 == 0) {
		rng := rand.NewPCG(uint64(c.id), uint64(b))
		for i := 0; i < blockSize; i += 8 {
			binary.LittleEndian.PutUint64(c.block[i:], rng.Uint64())
		}
	} else {
		o := hash64(c.g.spec.seed, 6, uint64(c.id), uint64(b)) % uint64(len(c.g.corpus)-blockSize)
		copy(c.block[:], c.g.corpus[o:])
	}
	binary.LittleEndian.PutUint64(c.block[0:], uint64(c.id))
	binary.LittleEndian.PutUint64(c.block[8:], uint64(b))
}

func (c *contentReader) Read(p []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && c.off < c.size {
		b := c.off / blockSize
		c.fill(b)
		in := c.off % blockSize
		k := copy(p[n:], c.block[in:min(blockSize, in+c.size-c.off)])
		n += k
		c.off += int64(k)
	}
	return n, nil
}

func (c *contentReader) Close() error { return nil }

// extract writes the tree below dir (which must not exist) as the encoder
// sees it: same names, modes, mtimes, contents and symlinks.
func extract(root *encoder.Node, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	var rec func(n *encoder.Node, p string) error
	rec = func(n *encoder.Node, p string) error {
		kids, err := n.List()
		if err != nil {
			return err
		}
		for _, c := range kids {
			cp := filepath.Join(p, c.Name)
			switch c.Mode & pxar.ModeTypeMask {
			case pxar.ModeDir:
				if err := os.Mkdir(cp, os.FileMode(c.Mode&0o777)); err != nil {
					return err
				}
				if err := rec(c, cp); err != nil {
					return err
				}
			case pxar.ModeRegular:
				if err := writeContent(c, cp, buf); err != nil {
					return err
				}
			case pxar.ModeSymlink:
				if err := os.Symlink(c.Symlink, cp); err != nil {
					return err
				}
			default:
				return fmt.Errorf("extract %s: unexpected mode %#o", cp, c.Mode)
			}
			if err := setMtime(cp, c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := rec(root, dir); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return setMtime(dir, root)
}

func writeContent(n *encoder.Node, p string, buf []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(n.Mode&0o777))
	if err != nil {
		return err
	}
	r, err := n.Open()
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	w, err := io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
	if err == nil && w != int64(n.Size) {
		err = fmt.Errorf("%s: wrote %d bytes, want %d", p, w, n.Size)
	}
	return errors.Join(err, f.Close())
}

func setMtime(p string, n *encoder.Node) error {
	ts := []unix.Timespec{{Sec: n.MtimeSec, Nsec: int64(n.MtimeNsec)}, {Sec: n.MtimeSec, Nsec: int64(n.MtimeNsec)}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimes %s: %w", p, err)
	}
	return nil
}

// humanBytes formats a byte count as "1.0 GiB", "250 MiB", "12 KiB".
func humanBytes(v int64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(v)/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(v)/(1<<10))
	}
}
