package datastore

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"pbsfs/lock"
	"pbsfs/manifest"
)

// Error kinds. Every error returned by this package matches exactly one of
// them with errors.Is; the underlying cause is kept for errors.As (for example
// a syscall.Errno such as ENOSPC).
var (
	ErrNotFound  = errors.New("not found")
	ErrInUse     = errors.New("in use")
	ErrProtected = errors.New("cannot remove protected snapshot")
	ErrCorrupt   = errors.New("corrupt")
	// ErrLockUnavailable: the manifest lock could not be had now — the
	// wait timed out, or the lock file was replaced under us — so trying
	// again later may work (EAGAIN).
	ErrLockUnavailable = errors.New("lock not available (timed out or its file was replaced)")
	ErrInvalid         = errors.New("invalid input")
	ErrReadOnly        = errors.New("read-only")
	ErrUnfinished      = errors.New("snapshot unfinished (no manifest yet)")
	ErrEncrypted       = errors.New("encrypted")
	ErrNotEmpty        = errors.New("not empty")
	ErrStale           = errors.New("changed by someone else")
	// ErrInterrupted: the caller's context ended (an interrupted FUSE
	// request) while waiting for a lock; nothing was written.
	ErrInterrupted = errors.New("interrupted")
	ErrIO          = errors.New("i/o error")
	// ErrUnavailable: PBS has taken the datastore away from its users (a
	// maintenance mode forbidding reads, a removable datastore whose
	// device is not mounted, its section gone from datastore.cfg, a
	// datastore.cfg that does not parse); see neighbour.go.
	ErrUnavailable = errors.New("datastore unavailable")
)

// Error is the error type of this package: what was done, to which file, the
// kind (one of the Err* sentinels) and the cause.
type Error struct {
	Op   string // e.g. "update manifest"
	Path string // the file or directory, as an absolute path
	Kind error  // one of the Err* sentinels
	Err  error  // the cause; may be nil
}

func (e *Error) Error() string {
	s := e.Op
	if e.Path != "" {
		s += " " + quote(e.Path)
	}
	if e.Err != nil {
		return s + ": " + e.Err.Error()
	}
	return s + ": " + e.Kind.Error()
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func quote(p string) string { return "\"" + p + "\"" }

// wrap builds an *Error, classifying the cause when kind is nil. An error that
// already is an *Error of this package is returned with its kind kept.
func wrap(op, path string, kind, err error) error {
	if err == nil && kind == nil {
		return nil
	}
	var de *Error
	if kind == nil && errors.As(err, &de) {
		kind = de.Kind
	}
	if kind == nil {
		kind = classify(err)
	}
	return &Error{Op: op, Path: path, Kind: kind, Err: err}
}

// classify maps a cause from the standard library, manifest or lock to one of
// this package's kinds.
func classify(err error) error {
	var r *remoteError
	switch {
	case err == nil:
		return ErrIO
	case errors.As(err, &r): // first: its cause may be a context's deadline
		return r.kind
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrInterrupted
	case errors.Is(err, ErrUnavailable):
		return ErrUnavailable
	case errors.Is(err, ErrReadOnly):
		return ErrReadOnly
	case errors.Is(err, manifest.ErrInvalid), errors.Is(err, manifest.ErrInvalidNotes), errors.Is(err, manifest.ErrTooLarge):
		return ErrInvalid
	case errors.Is(err, manifest.ErrEncrypted):
		return ErrEncrypted
	case errors.Is(err, manifest.ErrCorrupt), errors.Is(err, manifest.ErrBadSignature),
		errors.Is(err, errNotRegular), errors.Is(err, errTooBig):
		return ErrCorrupt
	case errors.Is(err, lock.ErrWouldBlock):
		return ErrInUse
	case errors.Is(err, lock.ErrTimeout), errors.Is(err, lock.ErrReplaced):
		return ErrLockUnavailable
	case errors.Is(err, lock.ErrUnsupported):
		return ErrReadOnly
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
		return ErrNotFound
	case errors.Is(err, syscall.EROFS):
		return ErrReadOnly
	}
	return ErrIO
}

// errLoop is what openat2 gives for a symlink it refused to follow.
var errLoop = syscall.ELOOP
