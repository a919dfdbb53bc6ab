package datastore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// S3-backed datastores (pbs-format.md §10.4): the directory is PBS's local
// cache. Changes are refused (checkSection, beginWrite); chunks the cache
// does not hold are reported as such (loadChunk).

// errNotCached is the cause of a chunk an S3-backed datastore's local cache
// does not hold (evicted: empty, or never fetched: missing).
var errNotCached = errors.New("chunk not in the local cache of this S3-backed datastore: pbsfs reads only what PBS " +
	"has cached locally (restore this archive through PBS, which fetches it from the bucket)")

// errS3 refuses changes to an S3-backed datastore found without datastore.cfg.
var errS3 = errors.New("the datastore looks like the local cache of an S3-backed PBS datastore (.using markers): " +
	"a change made here would be undone by the next s3-refresh; make changes through PBS")

// s3Backed reports whether the datastore is (or, without configuration,
// looks like) an S3 datastore's local cache. chunkRel, if not "", is a
// missing chunk whose .using marker also tells.
func (s *Store) s3Backed(chunkRel string) bool {
	if s.bucket != nil {
		return false // the bucket itself: a missing chunk is missing
	}
	if sec := s.Section(); sec != nil {
		return !sec.Backend.Local()
	}
	if s.s3Hint.Load() {
		return true
	}
	if chunkRel != "" {
		if ok, _ := s.exists(chunkRel + ".using"); ok {
			s.s3Hint.Store(true)
			return true
		}
	}
	return false
}

// usingMarkers looks for the .using markers of PBS's S3 GC in a sample of
// 64 of the 65,536 chunk directories (evenly spread): a weak hint, for when
// datastore.cfg does not describe the datastore (§10.4.4).
func usingMarkers(base string) bool {
	for i := 0; i < 1<<16; i += 1 << 10 {
		ents, err := os.ReadDir(filepath.Join(base, ".chunks", fmt.Sprintf("%04x", i)))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".using") {
				return true
			}
		}
	}
	return false
}
