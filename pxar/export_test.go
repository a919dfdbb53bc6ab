package pxar

// SeqWalkCount decodes the archive sequentially (helpers_test.go) and
// reads every file's bytes straight from its stream into buf; it returns
// the number of entries. External benchmarks use it as their baseline.
func SeqWalkCount(a *Archive, buf []byte) (int, error) {
	seq, err := seqWalk(a)
	if err != nil {
		return 0, err
	}
	src := a.meta
	if a.payload != nil {
		src = a.payload
	}
	for _, w := range seq {
		if w.e.Kind == KindFile {
			for off := uint64(0); off < w.e.Size; off += uint64(len(buf)) {
				n := min(uint64(len(buf)), w.e.Size-off)
				if _, err := src.ReadAt(buf[:n], int64(w.e.data.off+off)); err != nil {
					return 0, err
				}
			}
		}
	}
	return len(seq), nil
}

// DirCacheStats returns the number of cached directories and the
// children their listings hold.
func DirCacheStats(a *Archive) (dirs, entries int) { return a.dirs.stats() }

// ArchiveDirCacheStats returns the number of directories of a cached in
// its directory cache (its own or a shared one) and the children their
// listings hold.
func ArchiveDirCacheStats(a *Archive) (dirs, entries int) { return a.dirs.archiveStats(a.dirsID) }
