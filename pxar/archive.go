package pxar

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// DefaultDirCacheSize is the number of decoded directories an Archive keeps
// when Options.DirCacheSize is 0.
const DefaultDirCacheSize = 512

// MaxPreludeSize bounds the v2 PRELUDE Open reads into memory; PBS writes a
// short JSON object there.
const MaxPreludeSize = 1 << 20

// Options tune an Archive.
type Options struct {
	// DirCache, when set, is the cache of decoded directories the Archive
	// shares with the other Archives opened with it; DirCacheSize and
	// DirCacheEntries are then ignored (the DirCache has its bounds).
	DirCache *DirCache
	// DirCacheSize is the number of decoded directories kept in the
	// Archive's own LRU cache; 0 means DefaultDirCacheSize.
	DirCacheSize int
	// DirCacheEntries, when positive, also bounds the children the cached
	// listings hold together (the newest listing is kept whatever its
	// size).
	DirCacheEntries int
	// ScanAhead is how many entries below a directory ReadDir decodes in
	// stream order and caches with it (scan.go), at most half of the
	// directory cache's entry bound when it has one; 0 turns it off.
	ScanAhead int
}

// Archive is an opened pxar archive. All methods are safe for concurrent
// use.
type Archive struct {
	meta        io.ReaderAt
	metaSize    uint64
	payload     io.ReaderAt
	payloadSize uint64
	version     int
	prelude     []byte
	root        *Entry
	dirs        *dirCache  // the Archive's own or a shared DirCache's
	dirsID      uint64     // the Archive's keys in dirs
	scan        scanBudget // per ReadDir (scan.go)
}

// dirState is a directory opened from its goodbye table; children is nil
// until the directory was listed. A dirState is immutable once cached.
type dirState struct {
	entryStart   uint64 // the directory it was opened for (cache keys are goodbye ends)
	bodyStart    uint64
	goodbyeStart uint64
	n            uint64   // child items in the goodbye table
	children     []*Entry // sorted by name; nil until listed
}

// Open opens an archive. For a v1 archive meta is the .pxar stream and
// payload is nil; for a v2 split archive meta is the .mpxar stream and
// payload the .ppxar stream (its start marker is checked). A v2 archive may
// be opened with a nil payload: it then lists but its files do not read.
// Open reads only the header, the prelude, the root ENTRY and the root
// goodbye tail.
func Open(meta io.ReaderAt, metaSize int64, payload io.ReaderAt, payloadSize int64, opts Options) (*Archive, error) {
	if metaSize < 0 || payloadSize < 0 {
		return nil, errors.New("pxar: negative stream size")
	}
	a := &Archive{meta: meta, metaSize: uint64(metaSize), version: 1}
	if opts.DirCache != nil {
		a.dirs, a.dirsID = opts.DirCache.c, opts.DirCache.archiveID()
	} else {
		size := opts.DirCacheSize
		if size <= 0 {
			size = DefaultDirCacheSize
		}
		dirs, err := newDirCache(size, opts.DirCacheEntries)
		if err != nil {
			return nil, fmt.Errorf("pxar: directory cache: %w", err)
		}
		a.dirs = dirs
	}
	a.scan = newScanBudget(opts.ScanAhead, a.dirs)
	c := newCursor(meta, streamMeta, a.metaSize)
	defer c.release()
	ht, hsize, err := c.header(0, a.metaSize)
	if err != nil {
		return nil, err
	}
	pos := uint64(0)
	if ht == TypeFormatVersion {
		if hsize != HeaderSize+8 {
			return nil, corruptf(streamMeta, 0, "FORMAT_VERSION of %d bytes", hsize)
		}
		b, err := c.at(HeaderSize, 8)
		if err != nil {
			return nil, err
		}
		switch v := le64(b); v {
		case 1, 2:
			a.version = int(v)
		default:
			return nil, corruptf(streamMeta, HeaderSize, "unsupported format version %d", v)
		}
		pos = hsize
		ht, hsize, err = c.header(pos, a.metaSize)
		if err != nil {
			return nil, err
		}
		if ht == TypePrelude {
			if hsize-HeaderSize > MaxPreludeSize {
				return nil, corruptf(streamMeta, pos, "PRELUDE of %d bytes exceeds %d", hsize-HeaderSize, MaxPreludeSize)
			}
			b, err := c.at(pos+HeaderSize, hsize-HeaderSize)
			if err != nil {
				return nil, err
			}
			a.prelude = append(make([]byte, 0, len(b)), b...)
			pos += hsize
		}
	}
	if a.version == 2 && payload != nil {
		a.payload, a.payloadSize = payload, uint64(payloadSize)
		pc := newCursor(payload, streamPayload, a.payloadSize)
		defer pc.release()
		b, err := pc.at(0, HeaderSize)
		if err != nil {
			return nil, err
		}
		if le64(b) != TypePayloadStartMarker || le64(b[8:]) != HeaderSize {
			return nil, corruptf(streamPayload, 0, "no payload start marker")
		}
	} else if a.version == 1 && payload != nil {
		return nil, errors.New("pxar: a payload stream was given for a v1 archive")
	}
	root, _, err := a.decodeEntry(c, pos, a.metaSize)
	if err != nil {
		return nil, err
	}
	if root.Kind != KindDir {
		return nil, corruptf(streamMeta, pos, "the root entry is not a directory (mode %#o)", root.Mode)
	}
	root.end, root.tailRef = a.metaSize, 0
	a.root = root
	if _, err := a.openDir(root); err != nil {
		return nil, err
	}
	return a, nil
}

// Version is the archive's format version: 1 or 2 (split).
func (a *Archive) Version() int { return a.version }

// Prelude is the v2 PRELUDE content (nil if there is none). Callers must
// not modify it.
func (a *Archive) Prelude() []byte { return a.prelude }

// Root is the archive's root directory.
func (a *Archive) Root() (*Entry, error) { return a.root, nil }

// dirKey is the key of the directory whose goodbye table ends at end.
func (a *Archive) dirKey(end uint64) dirKey { return dirKey{archive: a.dirsID, end: end} }

// openDir opens a directory from the tail of its goodbye table
// (pxar-format.md §7.2) and checks that the table lies inside the directory
// and points back at the directory's ENTRY.
func (a *Archive) openDir(dir *Entry) (*dirState, error) {
	if dir.Kind != KindDir {
		return nil, ErrNotDir
	}
	if st, ok := a.dirs.get(a.dirKey(dir.end)); ok && st.entryStart == dir.entryStart && st.bodyStart == dir.bodyStart {
		return st, nil
	}
	end, body := dir.end, dir.bodyStart
	if end > a.metaSize || body > end || end-body < HeaderSize+GoodbyeItemSize {
		return nil, corruptf(streamMeta, body, "directory at %d has no room for a goodbye table before %d", dir.entryStart, end)
	}
	c := newCursor(a.meta, streamMeta, end)
	defer c.release()
	b, err := c.tail(end, GoodbyeItemSize, body)
	if err != nil {
		return nil, err
	}
	tailPos := end - GoodbyeItemSize
	hash, toff, tsize := le64(b), le64(b[8:]), le64(b[16:])
	if hash != GoodbyeTailMarker {
		return nil, corruptf(streamMeta, tailPos, "goodbye tail marker missing (directory at %d)", dir.entryStart)
	}
	if tsize < HeaderSize+GoodbyeItemSize || (tsize-HeaderSize)%GoodbyeItemSize != 0 || tsize > end-body {
		return nil, corruptf(streamMeta, tailPos, "goodbye table size %d does not fit its directory [%d, %d)", tsize, body, end)
	}
	gb := end - tsize
	ht, hsize, err := c.header(gb, end)
	if err != nil {
		return nil, err
	}
	if ht != TypeGoodbye || hsize != tsize {
		return nil, corruptf(streamMeta, gb, "expected GOODBYE of %d bytes, found %s of %d", tsize, typeName(ht), hsize)
	}
	if toff != gb-dir.tailRef {
		return nil, corruptf(streamMeta, tailPos, "goodbye tail points to %d, the directory starts at %d", int64(gb)-int64(toff), dir.tailRef)
	}
	n := (tsize-HeaderSize)/GoodbyeItemSize - 1
	if n > (gb-body)/minChildSize {
		return nil, corruptf(streamMeta, gb, "goodbye table lists %d children, the directory body [%d, %d) has room for %d", n, body, gb, (gb-body)/minChildSize)
	}
	st := &dirState{entryStart: dir.entryStart, bodyStart: body, goodbyeStart: gb, n: n}
	a.dirs.add(a.dirKey(dir.end), st)
	return st, nil
}

// minChildSize is the smallest child: a one-byte FILENAME (18 bytes) and a
// HARDLINK with a one-byte path (25 bytes).
const minChildSize = HeaderSize + 2 + HeaderSize + 8 + 1

type goodbyeItem struct {
	hash, offset, size uint64
}

// readItems reads the goodbye table's child items, checking as it goes that
// each points into the directory body, so a garbage table fails at its
// first bad item instead of being read whole.
func (a *Archive) readItems(c *cursor, dir *Entry, st *dirState) ([]goodbyeItem, error) {
	// The slice grows with what was read, not with what the tail claims.
	items := make([]goodbyeItem, 0, min(st.n, 4096))
	const batch = readWindow / GoodbyeItemSize
	for i := uint64(0); i < st.n; i += batch {
		k := min(batch, st.n-i)
		b, err := c.at(st.goodbyeStart+HeaderSize+i*GoodbyeItemSize, k*GoodbyeItemSize)
		if err != nil {
			return nil, err
		}
		for j := range k {
			o := b[j*GoodbyeItemSize:]
			it := goodbyeItem{le64(o), le64(o[8:]), le64(o[16:])}
			if _, _, err := childRange(dir, st, it, st.goodbyeStart+HeaderSize+(i+j)*GoodbyeItemSize); err != nil {
				return nil, err
			}
			items = append(items, it)
		}
	}
	return items, nil
}

// childRange turns a goodbye item into the child's FILENAME offset and the
// bound of its range: inside the directory body, before the goodbye table.
// A split archive's regular files may claim more than that (the encoder
// counts their payload, §10.3); the bound then is the goodbye table.
func childRange(dir *Entry, st *dirState, it goodbyeItem, itemPos uint64) (fileStart, bound uint64, err error) {
	gb := st.goodbyeStart
	if it.offset == 0 || it.offset > gb-dir.bodyStart {
		return 0, 0, corruptf(streamMeta, itemPos, "goodbye item points to %d, outside its directory body [%d, %d)", int64(gb)-int64(it.offset), dir.bodyStart, gb)
	}
	fileStart = gb - it.offset
	bound = gb
	if it.size < gb-fileStart {
		bound = fileStart + it.size
	}
	return fileStart, bound, nil
}

// decodeItem decodes the child a goodbye item names and checks the item's
// hash and, for a directory, that its range ends inside the parent.
func (a *Archive) decodeItem(c *cursor, dir *Entry, st *dirState, i uint64, it goodbyeItem) (*Entry, uint64, uint64, error) {
	itemPos := st.goodbyeStart + HeaderSize + i*GoodbyeItemSize
	fileStart, bound, err := childRange(dir, st, it, itemPos)
	if err != nil {
		return nil, 0, 0, err
	}
	e, end, err := a.decodeChild(c, fileStart, bound)
	if err != nil {
		return nil, 0, 0, err
	}
	if e.Kind == KindDir && !e.Hardlink && it.size != bound-fileStart {
		return nil, 0, 0, corruptf(streamMeta, itemPos, "goodbye item of directory %q claims %d bytes, its parent leaves %d", e.Name, it.size, st.goodbyeStart-fileStart)
	}
	if h := HashFilename([]byte(e.Name)); h != it.hash {
		return nil, 0, 0, corruptf(streamMeta, itemPos, "goodbye hash %#016x is not the hash of %q", it.hash, e.Name)
	}
	return e, fileStart, end, nil
}

// ReadDir returns all children of dir, sorted by name bytes. It decodes the
// directory from its goodbye table and checks the table: a binary search
// tree of the children's name hashes, children inside the directory body,
// not overlapping, with distinct names. The result is cached; callers must
// not modify the slice.
func (a *Archive) ReadDir(dir *Entry) ([]*Entry, error) {
	st, err := a.openDir(dir)
	if err != nil {
		return nil, err
	}
	if st.children != nil {
		return st.children, nil
	}
	c := newCursor(a.meta, streamMeta, dir.end)
	defer c.release()
	items, order, err := a.readTable(c, dir, st)
	if err != nil {
		return nil, err
	}
	out := make([]*Entry, 0, len(items))
	var prevEnd uint64
	scan := a.startScan()
	for _, i := range order {
		e, start, end, err := a.decodeItem(c, dir, st, uint64(i), items[i])
		if err != nil {
			return nil, err
		}
		if start < prevEnd {
			return nil, corruptf(streamMeta, start, "child %q overlaps its preceding sibling (ending at %d)", e.Name, prevEnd)
		}
		prevEnd = end
		out = append(out, e)
		if e.Kind == KindDir && !e.Hardlink {
			scan.dir(c, e)
		}
	}
	if err := a.cacheListing(dir, st, out); err != nil {
		return nil, err
	}
	return out, nil
}

// cacheListing sorts a directory's children by name, checks that the
// names are distinct and caches the listing.
func (a *Archive) cacheListing(dir *Entry, st *dirState, out []*Entry) error {
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return corruptf(streamMeta, st.goodbyeStart, "directory at %d holds %q twice", dir.entryStart, out[i].Name)
		}
	}
	listed := *st
	listed.children = out
	a.dirs.add(a.dirKey(dir.end), &listed)
	return nil
}

// readTable reads and checks a directory's goodbye table (readItems,
// checkBST) and returns its items with their indexes in archive order
// (offsets descending = FILENAME ascending), the order children are
// decoded in: neighbouring children share reads, and overlaps show.
func (a *Archive) readTable(c *cursor, dir *Entry, st *dirState) ([]goodbyeItem, []int, error) {
	items, err := a.readItems(c, dir, st)
	if err != nil {
		return nil, nil, err
	}
	if i, ok := checkBST(items); !ok {
		return nil, nil, corruptf(streamMeta, st.goodbyeStart+HeaderSize+uint64(i)*GoodbyeItemSize, "goodbye table is not a search tree of its hashes")
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool { return items[order[x]].offset > items[order[y]].offset })
	return items, order, nil
}

// checkBST reports whether the items form the binary-search-tree array of
// §7.1 (in-order traversal ascending; equal hashes allowed). On failure it
// returns the index of an offending item.
func checkBST(items []goodbyeItem) (int, bool) {
	n := len(items)
	var prev uint64
	first := true
	// iterative in-order traversal
	stack := make([]int, 0, 64)
	i := 0
	for i < n || len(stack) > 0 {
		for i < n {
			stack = append(stack, i)
			i = 2*i + 1
		}
		i = stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !first && items[i].hash < prev {
			return i, false
		}
		prev, first = items[i].hash, false
		i = 2*i + 2
	}
	return 0, true
}

// Lookup finds the child called name of directory dir: in the cached
// listing if the directory was listed, else through its goodbye table
// (filename hash, binary search, FILENAME compared). It returns ErrNotFound
// if there is none.
func (a *Archive) Lookup(dir *Entry, name string) (*Entry, error) {
	st, err := a.openDir(dir)
	if err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, ErrNotFound
	}
	if st.children != nil {
		kids := st.children
		i := sort.Search(len(kids), func(i int) bool { return kids[i].Name >= name })
		if i < len(kids) && kids[i].Name == name {
			return kids[i], nil
		}
		return nil, ErrNotFound
	}
	c := newCursor(a.meta, streamMeta, dir.end)
	defer c.release()
	h := HashFilename([]byte(name))
	itemAt := func(i uint64) (goodbyeItem, error) {
		b, err := c.at(st.goodbyeStart+HeaderSize+i*GoodbyeItemSize, GoodbyeItemSize)
		if err != nil {
			return goodbyeItem{}, err
		}
		return goodbyeItem{le64(b), le64(b[8:]), le64(b[16:])}, nil
	}
	// Depth-first over the slots whose hash can equal h: equal hashes may
	// sit in both subtrees of an equal slot.
	stack := []uint64{0}
	for steps := uint64(0); len(stack) > 0; steps++ {
		if steps > st.n {
			break
		}
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= st.n {
			continue
		}
		it, err := itemAt(i)
		if err != nil {
			return nil, err
		}
		switch {
		case h < it.hash:
			stack = append(stack, 2*i+1)
		case h > it.hash:
			stack = append(stack, 2*i+2)
		default:
			stack = append(stack, 2*i+2, 2*i+1)
			itemPos := st.goodbyeStart + HeaderSize + i*GoodbyeItemSize
			fileStart, bound, err := childRange(dir, st, it, itemPos)
			if err != nil {
				return nil, err
			}
			got, _, err := a.readFilename(c, fileStart, bound)
			if err != nil {
				return nil, err
			}
			if got != name {
				continue
			}
			e, _, _, err := a.decodeItem(c, dir, st, i, it)
			return e, err
		}
	}
	return nil, ErrNotFound
}

// ReadAt reads a regular file's content like os.File.ReadAt: it returns
// io.EOF when fewer than len(p) bytes remain at off. It never returns
// bytes beyond the file's PAYLOAD.
func (a *Archive) ReadAt(e *Entry, p []byte, off int64) (int, error) {
	if e.Kind != KindFile || e.data == nil {
		return 0, ErrNotRegular
	}
	if off < 0 {
		return 0, fmt.Errorf("pxar: read %q at negative offset %d", e.Name, off)
	}
	if uint64(off) >= e.Size {
		return 0, io.EOF
	}
	d := e.data
	r, stream, limit := a.meta, streamMeta, a.metaSize
	if d.split {
		if a.payload == nil {
			return 0, ErrNoPayload
		}
		r, stream, limit = a.payload, streamPayload, a.payloadSize
		if !d.checked.Load() {
			if err := a.checkPayloadRef(e); err != nil {
				return 0, err
			}
			d.checked.Store(true)
		}
	}
	n := uint64(len(p))
	if rest := e.Size - uint64(off); n > rest {
		n = rest
	}
	pos := d.off + uint64(off)
	if pos > limit || n > limit-pos {
		return 0, corruptf(stream, pos, "file %q reaches past the stream end %d", e.Name, limit)
	}
	got, err := r.ReadAt(p[:n], int64(pos))
	if uint64(got) < n {
		if err == nil || errors.Is(err, io.EOF) {
			return got, corruptf(stream, pos+uint64(got), "stream ends inside file %q", e.Name)
		}
		return got, fmt.Errorf("pxar: read %s stream at %d: %w", stream, pos+uint64(got), err)
	}
	if n < uint64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// checkPayloadRef checks that a PAYLOAD_REF's target is a PAYLOAD header of
// the referenced size (pxar-format.md §5.13).
func (a *Archive) checkPayloadRef(e *Entry) error {
	var b [HeaderSize]byte
	if got, err := a.payload.ReadAt(b[:], int64(e.data.ref)); got < HeaderSize {
		if err == nil || errors.Is(err, io.EOF) {
			return corruptf(streamPayload, e.data.ref, "payload stream ends inside the PAYLOAD header of %q", e.Name)
		}
		return fmt.Errorf("pxar: read payload stream at %d: %w", e.data.ref, err)
	}
	if le64(b[:]) != TypePayload || le64(b[8:]) != HeaderSize+e.Size {
		return corruptf(streamPayload, e.data.ref, "file %q: PAYLOAD_REF of %d bytes points to %s of %d", e.Name, e.Size, typeName(le64(b[:])), le64(b[8:]))
	}
	return nil
}
