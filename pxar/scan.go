package pxar

// Scanning ahead: listing a directory's subdirectories in stream order.
//
// In a v1 archive a directory's children are spread over its whole subtree:
// each child's entry is followed by its contents (file payloads,
// subdirectories). Listing a directory from its goodbye table reads the
// chunks holding its children's entries; listing each subdirectory after
// that reads most of them again, and in a large tree the caller's chunk
// cache has dropped them by then. With Options.ScanAhead, ReadDir decodes
// each subdirectory's subtree right after the subdirectory's entry, in
// stream order — the bytes that follow — and caches the listings of all
// directories it completes: one forward pass over the directory's region
// instead of one per directory. File payloads are skipped by their size,
// so chunks that hold nothing but file contents are never read.
//
// A listing made by a scan is the one ReadDir would make: the children
// are decoded by the same code from the same offsets, and when the scan
// reaches a directory's GOODBYE it checks the directory's tail (openDir)
// and goodbye table (readTable) and requires the table to name exactly
// the children found, in order, with the hashes, ranges and directory
// sizes ReadDir checks, and distinct names (cacheListing). Anything else —
// a format error, a read error, a table that disagrees — ends the scan of
// that subtree without caching the directory in question; ReadDir of it
// later decodes it from its table and reports what is wrong.
//
// Bounds: one ReadDir's scans decode at most Options.ScanAhead entries
// and cache at most half of the directory cache's directories and
// entries (so that a scan does not evict its own listings before they are
// used), and follow directories at most maxScanDepth deep. Memory thus stays within the
// directory cache's bound, plus the entries of the directories being
// scanned (at most ScanAhead).

// maxScanDepth bounds how deep a scan follows nested directories (its
// recursion).
const maxScanDepth = 256

// scanBudget is what one ReadDir's scans may decode and cache.
type scanBudget struct {
	entries, dirs int
}

// newScanBudget returns the budget of ScanAhead entries within half of
// the directory cache's bounds (its own or the shared one's).
func newScanBudget(scanAhead int, cache *dirCache) scanBudget {
	entries := scanAhead
	if cache.maxEntries > 0 {
		entries = min(entries, cache.maxEntries/2)
	}
	if entries <= 0 {
		return scanBudget{}
	}
	return scanBudget{entries: entries, dirs: max(1, cache.size/2)}
}

// scanner is one ReadDir's scanning state; a nil scanner scans nothing.
type scanner struct {
	a    *Archive
	left scanBudget
}

// startScan returns the scanner for one ReadDir, nil when scanning is off.
func (a *Archive) startScan() *scanner {
	if a.scan.entries <= 0 {
		return nil
	}
	return &scanner{a: a, left: a.scan}
}

// scanned is a child found by a scan: its entry and its range.
type scanned struct {
	e          *Entry
	start, end uint64
}

// dir scans the subtree of directory e, just decoded from its parent's
// goodbye table (so e.end is known), unless it is listed already or the
// budget is spent.
func (s *scanner) dir(c *cursor, e *Entry) {
	if s == nil || s.left.entries <= 0 || s.left.dirs <= 0 {
		return
	}
	if st, ok := s.a.dirs.peek(s.a.dirKey(e.end)); ok && st.children != nil && st.entryStart == e.entryStart && st.bodyStart == e.bodyStart {
		return
	}
	s.body(c, e, e.end, 0)
}

// body decodes directory e's children from its body start to its GOODBYE
// (nothing at or beyond bound), scanning each subdirectory first, and
// caches e's listing if its goodbye table confirms it. At depth 0, e.end
// is known and must be where the GOODBYE ends; below, the GOODBYE sets it.
// It returns e's end and whether the listing was cached.
func (s *scanner) body(c *cursor, e *Entry, bound uint64, depth int) (uint64, bool) {
	if depth > maxScanDepth {
		return 0, false
	}
	var kids []scanned
	for pos := e.bodyStart; ; {
		if s.left.entries <= 0 {
			return 0, false
		}
		ht, size, err := c.header(pos, bound)
		if err != nil {
			return 0, false
		}
		if ht == TypeGoodbye {
			end := pos + size
			if depth == 0 && e.end != end {
				return 0, false
			}
			e.end = end
			return end, s.confirm(c, e, kids)
		}
		if ht != TypeFilename {
			return 0, false
		}
		child, cend, err := s.a.decodeChild(c, pos, bound)
		if err != nil {
			return 0, false
		}
		s.left.entries--
		if child.Kind == KindDir && !child.Hardlink {
			end, ok := s.body(c, child, bound, depth+1)
			if !ok {
				return 0, false
			}
			cend = end
		}
		kids = append(kids, scanned{child, pos, cend})
		pos = cend
	}
}

// confirm checks directory e's tail and goodbye table against the children
// the scan found (as ReadDir checks them against the children it decodes)
// and caches the listing.
func (s *scanner) confirm(c *cursor, e *Entry, kids []scanned) bool {
	if s.left.dirs <= 0 {
		return false
	}
	st, err := s.a.openDir(e)
	if err != nil {
		return false
	}
	items, order, err := s.a.readTable(c, e, st)
	if err != nil || len(items) != len(kids) {
		return false
	}
	out := make([]*Entry, len(kids))
	for k, i := range order {
		it, kid := items[i], kids[k]
		fileStart, bound, err := childRange(e, st, it, st.goodbyeStart+HeaderSize+uint64(i)*GoodbyeItemSize)
		if err != nil || fileStart != kid.start || kid.end > bound {
			return false
		}
		if kid.e.Kind == KindDir && !kid.e.Hardlink && (it.size != bound-fileStart || kid.end != bound) {
			return false
		}
		if HashFilename([]byte(kid.e.Name)) != it.hash {
			return false
		}
		out[k] = kid.e
	}
	if s.a.cacheListing(e, st, out) != nil {
		return false
	}
	s.left.dirs--
	return true
}
