package pxar

import (
	"errors"
	"io"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultDirCacheSize is the number of decoded directories an Archive keeps
// when Options.DirCacheSize is 0.
const DefaultDirCacheSize = 512

// Options tune an Archive.
type Options struct {
	// DirCacheSize is the number of decoded directories kept in an LRU
	// cache; 0 means DefaultDirCacheSize.
	DirCacheSize int
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
	dirs        *lru.Cache[uint64, *dirState]
}

// dirState is a directory opened from its goodbye table; children is nil
// until the directory was listed.
type dirState struct {
	goodbyeStart uint64
	n            uint64
	children     []*Entry // sorted by name
}

var errTODO = errors.New("pxar: not implemented yet")

// Open opens an archive. For a v1 archive meta is the .pxar stream and
// payload is nil; for a v2 split archive meta is the .mpxar stream and
// payload the .ppxar stream (its start marker is checked). Open reads only
// the header, the prelude, the root ENTRY and the root goodbye tail.
func Open(meta io.ReaderAt, metaSize int64, payload io.ReaderAt, payloadSize int64, opts Options) (*Archive, error) {
	return nil, errTODO
}

// Version is the archive's format version: 1 or 2 (split).
func (a *Archive) Version() int { return a.version }

// Prelude is the v2 PRELUDE content (nil if there is none).
func (a *Archive) Prelude() []byte { return a.prelude }

// Root is the archive's root directory.
func (a *Archive) Root() (*Entry, error) { return nil, errTODO }

// Lookup finds the child called name of directory dir through the
// directory's goodbye table (filename hash). It returns ErrNotFound if there
// is none.
func (a *Archive) Lookup(dir *Entry, name string) (*Entry, error) { return nil, errTODO }

// ReadDir returns all children of dir, sorted by name bytes.
func (a *Archive) ReadDir(dir *Entry) ([]*Entry, error) { return nil, errTODO }

// ReadAt reads a regular file's content like os.File.ReadAt: it returns
// io.EOF when fewer than len(p) bytes remain at off.
func (a *Archive) ReadAt(e *Entry, p []byte, off int64) (int, error) { return 0, errTODO }
