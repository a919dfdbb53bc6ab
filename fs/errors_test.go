package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"testing"

	"bazil.org/fuse"

	"pbsfs/datastore"
	"pbsfs/manifest"
)

func TestErrnoTable(t *testing.T) {
	f := &FS{log: slog.New(slog.DiscardHandler), warned: map[string]struct{}{}}
	ds := func(kind, cause error) error {
		return &datastore.Error{Op: "op", Path: "/store/vm/100", Kind: kind, Err: cause}
	}
	cases := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"not found", ds(datastore.ErrNotFound, nil), syscall.ENOENT},
		{"unfinished", ds(datastore.ErrUnfinished, nil), syscall.ENOENT},
		{"in use", ds(datastore.ErrInUse, errors.New("lock held")), syscall.EBUSY},
		{"protected", ds(datastore.ErrProtected, nil), syscall.EPERM},
		{"corrupt", ds(datastore.ErrCorrupt, manifest.ErrBadCRC), syscall.EIO},
		{"lock timeout", ds(datastore.ErrLockUnavailable, nil), syscall.EAGAIN},
		{"invalid notes", ds(datastore.ErrInvalid, manifest.ErrInvalidNotes), syscall.EILSEQ},
		{"too large", ds(datastore.ErrInvalid, manifest.ErrTooLarge), syscall.EFBIG},
		{"invalid", ds(datastore.ErrInvalid, errors.New("bad name")), syscall.EINVAL},
		{"read-only", ds(datastore.ErrReadOnly, nil), syscall.EROFS},
		{"stale", ds(datastore.ErrStale, nil), syscall.ESTALE},
		{"not empty", ds(datastore.ErrNotEmpty, nil), syscall.ENOTEMPTY},
		{"encrypted", ds(datastore.ErrEncrypted, manifest.ErrEncrypted), syscall.EACCES},
		{"no space", ds(datastore.ErrIO, fmt.Errorf("write: %w", syscall.ENOSPC)), syscall.ENOSPC},
		{"other io", ds(datastore.ErrIO, fmt.Errorf("write: %w", syscall.EBADMSG)), syscall.EIO},
		{"interrupted", ds(datastore.ErrInterrupted, context.Canceled), syscall.EINTR},
		{"canceled", fmt.Errorf("wrapped: %w", context.Canceled), syscall.EINTR},
		{"errno", fuse.Errno(syscall.EXDEV), syscall.EXDEV},
		{"syscall errno", syscall.ENOTDIR, syscall.ENOTDIR},
		{"unknown", errors.New("surprise"), syscall.EIO},
	}
	for _, c := range cases {
		got := f.errno("test", c.err)
		if c.want == 0 {
			if got != nil {
				t.Errorf("%s: got %v, want nil", c.name, got)
			}
			continue
		}
		var fe fuse.Errno
		if !errors.As(got, &fe) || syscall.Errno(fe) != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
		// bazil must see exactly this errno.
		if fuse.ToErrno(got) != fuse.Errno(c.want) {
			t.Errorf("%s: bazil sees %v", c.name, fuse.ToErrno(got))
		}
	}
}
