package fs

import (
	"context"
	"errors"
	"syscall"

	"bazil.org/fuse"

	"pbsfs/datastore"
	"pbsfs/manifest"
	"pbsfs/pxar"
)

// Errors this package produces itself. They already are errnos; errno passes
// them through unchanged.
var (
	errNoEnt    = fuse.Errno(syscall.ENOENT)
	errPerm     = fuse.Errno(syscall.EPERM)
	errAccess   = fuse.Errno(syscall.EACCES)
	errTooBig   = fuse.Errno(syscall.EFBIG)
	errIllegal  = fuse.Errno(syscall.EILSEQ) // notes that are not UTF-8
	errExist    = fuse.Errno(syscall.EEXIST)
	errNotDir   = fuse.Errno(syscall.ENOTDIR)
	errIsDir    = fuse.Errno(syscall.EISDIR)
	errInval    = fuse.Errno(syscall.EINVAL)
	errNotEmpty = fuse.Errno(syscall.ENOTEMPTY)
)

// passThrough lists the causes of a datastore ErrIO whose errno means
// something to the user as it is ("No space left on device") and is passed
// on instead of a bare EIO.
var passThrough = map[syscall.Errno]bool{
	syscall.ENOSPC:       true,
	syscall.EDQUOT:       true,
	syscall.EACCES:       true,
	syscall.EPERM:        true,
	syscall.EROFS:        true,
	syscall.ENAMETOOLONG: true,
	syscall.EMFILE:       true,
	syscall.ENFILE:       true,
	syscall.ENOMEM:       true,
}

// errno is the one place that turns an error into the errno the kernel gets.
// op names the operation and file for log lines ("lookup vm/100/notes").
//
//	datastore.ErrNotFound     ENOENT
//	datastore.ErrUnfinished   ENOENT   (a snapshot without manifest has no notes or manifest.json)
//	datastore.ErrInUse        EBUSY    (snapshot or group lock held: backup, restore, verify, sync)
//	datastore.ErrProtected    EPERM
//	datastore.ErrCorrupt      EIO      + warning naming the file
//	datastore.ErrLockUnavailable EAGAIN (manifest lock not had within 5 s, or replaced: try again)
//	datastore.ErrInvalid      EILSEQ for notes that are not UTF-8, EFBIG for too large, else EINVAL
//	datastore.ErrReadOnly     EROFS    (+ warning with the reason when PBS's maintenance mode or an S3 backend refused it)
//	datastore.ErrUnavailable  EIO      + warning: a maintenance mode forbidding reads, removable device not mounted, ...
//	datastore.ErrStale        ESTALE   (notes changed by someone else since they were read)
//	datastore.ErrNotEmpty     ENOTEMPTY
//	datastore.ErrEncrypted    EACCES
//	datastore.ErrIO           from the S3 bucket a store is read from: EIO + warning with the
//	                          request's kind (timeout, unreachable, …), once per file and cause;
//	                          else the cause's errno if it is one of passThrough, else EIO + error line
//	datastore.ErrInterrupted  EINTR    (the request was interrupted while waiting for a lock; nothing written)
//	pxar.ErrCorrupt           EIO      + warning naming the file (and the error the stream offset)
//	pxar.ErrNotFound          ENOENT   (no such name in an archived directory)
//	pxar.ErrNotDir            ENOTDIR
//	context.Canceled          EINTR
//	errNotUTF8, errPastLimit  EILSEQ, EFBIG (a notes write session's text, session.go)
//	errOffset                 EINVAL
//	fuse.Errno, syscall.Errno unchanged (produced by this package)
//	anything else             EIO + error line with the cause
func (f *FS) errno(op string, err error) error {
	if err == nil {
		return nil
	}
	switch e := err.(type) {
	case fuse.Errno:
		return e
	case syscall.Errno:
		return fuse.Errno(e)
	}
	switch {
	case errors.Is(err, datastore.ErrNotFound), errors.Is(err, datastore.ErrUnfinished):
		return fuse.Errno(syscall.ENOENT)
	case errors.Is(err, datastore.ErrInUse):
		f.log.Info(op+": in use", "err", err)
		return fuse.Errno(syscall.EBUSY)
	case errors.Is(err, datastore.ErrProtected):
		f.log.Info(op+": protected", "err", err)
		return fuse.Errno(syscall.EPERM)
	case errors.Is(err, datastore.ErrCorrupt), errors.Is(err, pxar.ErrCorrupt):
		f.warnOnce(op+": corrupt data", err)
		return fuse.Errno(syscall.EIO)
	case errors.Is(err, pxar.ErrNotFound):
		return fuse.Errno(syscall.ENOENT)
	case errors.Is(err, pxar.ErrNotDir):
		return errNotDir
	case errors.Is(err, datastore.ErrLockUnavailable):
		f.log.Warn(op+": manifest lock not available", "err", err)
		return fuse.Errno(syscall.EAGAIN)
	case errors.Is(err, datastore.ErrInvalid):
		f.log.Info(op+": invalid", "err", err)
		switch {
		case errors.Is(err, manifest.ErrInvalidNotes):
			return errIllegal
		case errors.Is(err, manifest.ErrTooLarge):
			return errTooBig
		}
		return errInval
	case errors.Is(err, datastore.ErrUnavailable):
		f.warnOnce(op+": datastore unavailable", err)
		return fuse.Errno(syscall.EIO)
	case errors.Is(err, datastore.ErrReadOnly):
		if de := (*datastore.Error)(nil); errors.As(err, &de) && de.Err != nil {
			f.warnOnce(op+": refused", err) // PBS's maintenance text, or the S3 advice
		}
		return fuse.Errno(syscall.EROFS)
	case errors.Is(err, datastore.ErrStale):
		f.log.Warn(op+": changed by someone else meanwhile; not written", "err", err)
		return fuse.Errno(syscall.ESTALE)
	case errors.Is(err, datastore.ErrNotEmpty):
		return fuse.Errno(syscall.ENOTEMPTY)
	case errors.Is(err, datastore.ErrEncrypted):
		return fuse.Errno(syscall.EACCES)
	case errors.Is(err, datastore.ErrInterrupted), errors.Is(err, context.Canceled):
		f.log.Info(op+": interrupted; nothing written", "err", err)
		return fuse.Errno(syscall.EINTR)
	case errors.Is(err, errNotUTF8):
		f.log.Info(op+": not written", "err", err)
		return errIllegal
	case errors.Is(err, errPastLimit):
		f.log.Info(op+": not written", "err", err, "limit", f.maxNotes)
		return errTooBig
	case errors.Is(err, errOffset):
		return errInval
	}
	if kind := datastore.RemoteFailure(err); kind != nil {
		f.warnOnce(op+": S3 request failed ("+kind.Error()+")", err)
		return fuse.Errno(syscall.EIO)
	}
	var se syscall.Errno
	if errors.As(err, &se) && passThrough[se] {
		f.log.Warn(op+" failed", "err", err)
		return fuse.Errno(se)
	}
	f.log.Error(op+": i/o error", "err", err)
	return fuse.Errno(syscall.EIO)
}

// readOnlyErr is what every change gets in a read-only mount: EROFS, and
// when the store is read-only for a reason of its own (read from its S3
// bucket: changes go through PBS), that reason logged once.
func (f *FS) readOnlyErr() error {
	if why := f.store.ReadOnlyReason(); why != nil {
		return f.errno("change refused", why)
	}
	return fuse.Errno(syscall.EROFS)
}

// warnOnce logs err at warning level the first time it is seen and at debug
// level afterwards, so that `ls -lR` over a corrupt snapshot does not flood
// the log with one line per stat. Seen means: the same message (operation
// and file) with the same root cause, so that the kernel's reads around a
// missing chunk, each naming another offset, log one line per file.
func (f *FS) warnOnce(msg string, err error) {
	cause := err
	for u := errors.Unwrap(cause); u != nil; u = errors.Unwrap(cause) {
		cause = u
	}
	key := msg + "\x00" + cause.Error()
	f.warnedMu.Lock()
	_, seen := f.warned[key]
	if !seen {
		if len(f.warned) >= maxWarned {
			clear(f.warned)
		}
		f.warned[key] = struct{}{}
	}
	f.warnedMu.Unlock()
	if seen {
		f.log.Debug(msg, "err", err)
		return
	}
	f.log.Warn(msg, "err", err)
}

// maxWarned bounds the memory warnOnce uses; past it, it forgets everything
// and warns again.
const maxWarned = 1024
