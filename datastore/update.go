package datastore

import (
	"context"
	"errors"
	"fmt"
	"path"
	"syscall"
	"unicode/utf8"

	"pbsfs/lock"
	"pbsfs/manifest"
)

// errNoChange is returned by an update function to say there is nothing to
// write; the update then succeeds without touching the file.
var errNoChange = errors.New("no change")

// UpdateManifest is PBS's update_manifest: it takes the manifest lock
// (waiting up to lock.ManifestTimeout), loads the manifest with its CRC
// checked, lets fn change the unprotected section — nothing else can be
// changed through manifest.Unprotected — and replaces the blob atomically,
// keeping its owner, group and mode.
//
// Errors: ErrReadOnly, ErrNotFound, ErrUnfinished, ErrCorrupt,
// ErrLockUnavailable, ErrInterrupted (ctx ended while waiting for the lock),
// ErrInvalid (from fn or the encoder), or ErrIO with the cause (for example
// ENOSPC). On any error the manifest is unchanged.
func (s *Store) UpdateManifest(ctx context.Context, sn Snapshot, fn func(*manifest.Unprotected) error) error {
	return s.updateManifest(ctx, "update manifest", sn, fn)
}

// SetNotes replaces the snapshot's notes (unprotected.notes). Notes must be
// valid UTF-8 and at most MaxNotesSize bytes (else ErrInvalid). Writing the notes the manifest already has
// changes nothing on disk.
func (s *Store) SetNotes(ctx context.Context, sn Snapshot, notes string) error {
	return s.ReplaceNotes(ctx, sn, nil, notes)
}

// ReplaceNotes is SetNotes with a precondition: when base is not nil and the
// notes found under the lock differ from *base, nothing is written and
// ErrStale is returned. A writer whose new text was built on the old text
// (an append, a partial overwrite) uses it so that it never silently drops
// someone else's edit.
func (s *Store) ReplaceNotes(ctx context.Context, sn Snapshot, base *string, notes string) error {
	if !utf8.ValidString(notes) {
		return wrap("set notes", s.abs(path.Join(sn.Dir(), ManifestName)), ErrInvalid, manifest.ErrInvalidNotes)
	}
	if len(notes) > MaxNotesSize {
		return wrap("set notes", s.abs(path.Join(sn.Dir(), ManifestName)), ErrInvalid,
			fmt.Errorf("notes of %d bytes exceed the limit of %d: %w", len(notes), MaxNotesSize, manifest.ErrTooLarge))
	}
	return s.updateManifest(ctx, "set notes", sn, func(u *manifest.Unprotected) error {
		cur := u.Notes()
		if base != nil && cur != *base {
			return fmt.Errorf("notes were changed since they were read: %w", ErrStale)
		}
		if cur == notes {
			return errNoChange
		}
		return u.SetNotes(notes)
	})
}

func (s *Store) updateManifest(ctx context.Context, op string, sn Snapshot, fn func(*manifest.Unprotected) error) error {
	rel := path.Join(sn.Dir(), ManifestName)
	if err := sn.Validate(); err != nil {
		return wrap(op, s.abs(sn.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(rel))
	}
	done, err := s.beginWrite(ctx, op, s.abs(rel))
	if err != nil {
		return err
	}
	defer done()
	if _, err := s.statDir(op, sn.Dir()); err != nil {
		return err
	}
	lk, err := s.locker.LockManifest(ctx, sn.lockPath(), lock.ManifestTimeout)
	if err != nil {
		return wrap(op, s.abs(rel), nil, lockErr(err))
	}
	defer lk.Unlock()
	if err := ctx.Err(); err != nil { // interrupted just as the lock came
		return wrap(op, s.abs(rel), ErrInterrupted, err)
	}

	raw, st, err := s.readRel(rel, maxManifestFile)
	if err != nil {
		return s.manifestErr(op, sn, rel, err)
	}
	newRaw, m, err := manifest.UpdateBlob(raw, fn)
	switch {
	case errors.Is(err, errNoChange):
		return nil
	case errors.Is(err, ErrStale):
		return wrap(op, s.abs(rel), ErrStale, err)
	case err != nil:
		return wrap(op, s.abs(rel), nil, err)
	}
	if n, err := s.removeStaleTemps(sn.Dir()); err != nil {
		s.log.Warn("cannot clean up temp files", "dir", s.abs(sn.Dir()), "err", err)
	} else if n > 0 {
		s.log.Info("cleaned up temp files of an interrupted write", "dir", s.abs(sn.Dir()), "count", n)
	}
	newSt, err := s.replaceFile(sn.Dir(), ManifestName, newRaw, ownerOf(st, Stamp{}))
	if err != nil {
		return wrap(op, s.abs(rel), nil, err)
	}
	s.remember(newSt, m)
	return nil
}

// lockErr classifies a lock that could not be taken because a symlink sits
// where its lock file (or locked directory) belongs — never made by PBS or
// pbsfs, so planted; the lock package does not follow it — as corrupt store
// data (EIO and a warning naming it in the mount), not as a missing file.
func lockErr(err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%w (a symlink where a lock belongs; not followed): %w", err, errNotRegular)
	}
	return err
}
