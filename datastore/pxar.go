package datastore

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"pbsfs/pxar"
)

// pxarArchiveCache is how many opened pxar archives the store keeps (by
// snapshot and name). An opened archive holds its root; the decoded
// directories of all archives live in the store's one directory cache
// (pxarDirCacheDirs, pxarDirCacheEntries), so keeping more archives costs
// no more memory for them. The file system keeps the archive of every
// directory the kernel holds anyway, so this only spares re-opening the
// archives of recently visited snapshots.
const pxarArchiveCache = 32

// The store's directory cache (pxar.DirCache), shared by every pxar
// archive it opens, v1 and split: 4,096 directories whose listings hold
// 32,768 children in all (~14 MB of decoded entries, however many archives
// are open; the newest listing is kept whatever its size).
const (
	pxarDirCacheDirs    = 4096
	pxarDirCacheEntries = 32768
)

// pxarV1Options are the reader options of v1 archives besides the shared
// directory cache: a v1 directory's entries are spread over its subtree,
// so listing directory by directory would read most chunks more than
// once; the reader decodes up to 16,384 entries below a listed directory
// in stream order and keeps them (pxar.Options.ScanAhead, at most half of
// the cache's entries). Split archives keep their metadata in a small
// stream of their own and do not scan ahead.
var pxarV1Options = pxar.Options{ScanAhead: 16384}

// Suffixes of pxar archive files (pxar-format.md §1).
const (
	pxarV1Suffix      = ".pxar.didx"
	pxarMetaSuffix    = ".mpxar.didx"
	pxarPayloadSuffix = ".ppxar.didx"
)

// pxarName returns the name NAME.pxar a pxar archive file (NAME.pxar.didx,
// NAME.mpxar.didx) is shown under.
func pxarName(file string) (string, bool) {
	for _, suf := range [...]string{pxarV1Suffix, pxarMetaSuffix} {
		if n, ok := strings.CutSuffix(file, suf); ok && n != "" {
			return n + ".pxar", true
		}
	}
	return "", false
}

// Split reports whether the archive is a split pxar archive (a metadata
// and a payload stream).
func (a ArchiveInfo) Split() bool {
	return a.Kind == PxarArchive && strings.HasSuffix(a.File, pxarMetaSuffix)
}

// pairSplitArchives attaches each NAME.ppxar.didx to the split archive
// NAME.mpxar.didx it belongs to and drops it from the list; a payload
// stream without its metadata stays a stream of its own.
func pairSplitArchives(list []ArchiveInfo) []ArchiveInfo {
	find := func(file string, kind ArchiveKind) int {
		return slices.IndexFunc(list, func(a ArchiveInfo) bool { return a.File == file && a.Kind == kind })
	}
	out := make([]ArchiveInfo, 0, len(list))
	for _, a := range list {
		if base, ok := strings.CutSuffix(a.File, pxarPayloadSuffix); ok && a.Kind == DynamicArchive &&
			find(base+pxarMetaSuffix, PxarArchive) >= 0 {
			continue
		}
		if a.Split() {
			if j := find(strings.TrimSuffix(a.File, pxarMetaSuffix)+pxarPayloadSuffix, DynamicArchive); j >= 0 {
				p := list[j]
				a.Payload = &p
			}
		}
		out = append(out, a)
	}
	return out
}

// openedPxar is a cached opened pxar archive and the identity of the files
// it was opened from.
type openedPxar struct {
	info    ArchiveInfo
	meta    FileID
	payload FileID
	arch    *pxar.Archive
}

func newPxarCache() *lru.Cache[string, *openedPxar] {
	c, _ := lru.New[string, *openedPxar](pxarArchiveCache) // fails only for a size <= 0
	return c
}

func newPxarDirCache() *pxar.DirCache {
	c, _ := pxar.NewDirCache(pxarDirCacheDirs, pxarDirCacheEntries) // fails only for a size <= 0
	return c
}

// OpenPxar opens the pxar archive of a finished snapshot shown as name (a
// PxarArchive of ListArchives) for browsing: the index files are checked
// against the manifest (OpenArchive), and the archive reads its streams
// through the verified, cached chunk reader. Encrypted archives without
// the key give ErrEncrypted; a malformed archive ErrCorrupt (naming the
// archive file and the offset); a name that is not a pxar archive
// ErrNotFound.
//
// Opened archives are kept (a bounded LRU per snapshot and name) while the
// manifest entry and the index files are unchanged, so a later call costs
// the manifest check and a stat per index file. The returned stamp is that
// of the (metadata) index file.
func (s *Store) OpenPxar(sn Snapshot, name string) (*pxar.Archive, ArchiveInfo, Stamp, error) {
	const op = "open pxar archive"
	info, st, err := s.StatArchive(sn, name)
	if err != nil {
		return nil, info, st, err
	}
	if info.Kind != PxarArchive {
		return nil, info, st, wrap(op, s.abs(path.Join(sn.Dir(), info.File)), ErrNotFound, errors.New("not a pxar archive"))
	}
	var pst Stamp
	if info.Payload != nil {
		prel := path.Join(sn.Dir(), info.Payload.File)
		if pst, err = s.statRel(prel); err != nil {
			return nil, info, st, s.archiveFileErr(op, prel, *info.Payload, err)
		}
	}
	key := path.Join(sn.Dir(), name)
	if c, ok := s.arch.pxar.Get(key); ok && c.meta == st.ID() && c.payload == pst.ID() &&
		sameManifestEntry(c.info, info) {
		return c.arch, info, st, nil
	}
	arch, err := s.openPxar(sn, info)
	if err != nil {
		return nil, info, st, err
	}
	s.arch.pxar.Add(key, &openedPxar{info: info, meta: st.ID(), payload: pst.ID(), arch: arch})
	return arch, info, st, nil
}

// sameManifestEntry reports whether two listings of an archive describe the
// same index files.
func sameManifestEntry(a, b ArchiveInfo) bool {
	if a.File != b.File || a.Csum != b.Csum || a.Size != b.Size || a.CryptMode != b.CryptMode ||
		(a.Payload == nil) != (b.Payload == nil) {
		return false
	}
	return a.Payload == nil || (a.Payload.Csum == b.Payload.Csum && a.Payload.Size == b.Payload.Size &&
		a.Payload.CryptMode == b.Payload.CryptMode)
}

// openPxar opens the index files of info and the archive over them.
func (s *Store) openPxar(sn Snapshot, info ArchiveInfo) (*pxar.Archive, error) {
	const op = "open pxar archive"
	abs := s.abs(path.Join(sn.Dir(), info.File))
	if info.Split() && info.Payload == nil {
		return nil, wrap(op, abs, ErrCorrupt, fmt.Errorf("the manifest lists no payload stream %s",
			strings.TrimSuffix(info.File, pxarMetaSuffix)+pxarPayloadSuffix))
	}
	// Encrypted streams without the key: their reads fail with
	// ErrEncrypted, which pxar.Open passes on.
	meta, err := s.openArchive(sn, info)
	if err != nil {
		return nil, err
	}
	var payload io.ReaderAt // a nil interface for v1, not a nil *Archive
	var payloadSize int64
	if info.Payload != nil {
		p, err := s.openArchive(sn, *info.Payload)
		if err != nil {
			return nil, err
		}
		payload, payloadSize = p, p.Size()
	}
	opts := pxar.Options{}
	if info.Payload == nil {
		opts = pxarV1Options
	}
	opts.DirCache = s.arch.dirs
	arch, err := pxar.Open(meta, meta.Size(), payload, payloadSize, opts)
	if err != nil {
		if errors.Is(err, pxar.ErrCorrupt) {
			return nil, wrap(op, abs, ErrCorrupt, err)
		}
		return nil, wrap(op, abs, nil, err)
	}
	return arch, nil
}
