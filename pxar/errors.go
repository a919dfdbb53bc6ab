package pxar

import (
	"errors"
	"fmt"
	"io/fs"
)

// ErrCorrupt is wrapped by every format error: a malformed item, a goodbye
// table pointing outside its directory, a bad name, a size that lies. The
// wrapping *CorruptError names the stream and offset.
var ErrCorrupt = errors.New("pxar: corrupt archive")

// ErrNotFound is returned by Lookup for a name the directory does not hold.
// errors.Is(ErrNotFound, fs.ErrNotExist) is true.
var ErrNotFound = fmt.Errorf("pxar: no such entry: %w", fs.ErrNotExist)

// ErrNotDir is returned by ReadDir and Lookup for an entry that is not a
// directory.
var ErrNotDir = errors.New("pxar: not a directory")

// ErrNotRegular is returned by ReadAt for an entry that is not a regular
// file.
var ErrNotRegular = errors.New("pxar: not a regular file")

// ErrNoPayload is returned by ReadAt for a file of a split archive that was
// opened without its payload stream.
var ErrNoPayload = errors.New("pxar: split archive opened without its payload stream")

// CorruptError describes malformed archive data: which stream ("metadata"
// or "payload"), at which byte offset, and what is wrong. It unwraps to
// ErrCorrupt.
type CorruptError struct {
	Stream string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("pxar: corrupt archive: %s stream offset %d: %s", e.Stream, e.Offset, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

const (
	streamMeta    = "metadata"
	streamPayload = "payload"
)

func corruptf(stream string, off uint64, format string, args ...any) error {
	o := int64(off)
	if off > 1<<62 {
		o = -1
	}
	return &CorruptError{Stream: stream, Offset: o, Reason: fmt.Sprintf(format, args...)}
}
