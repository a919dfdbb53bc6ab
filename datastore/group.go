package datastore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Names of the files in a group directory.
const (
	GroupNotesName = "notes"
	OwnerName      = "owner"
)

// MaxNotesSize bounds the notes pbsfs reads or writes (group notes file and
// snapshot notes alike). PBS sets no limit, but a manifest blob cannot exceed
// 128 MiB and notes are meant for people.
const MaxNotesSize = 16 << 20

// GroupNotes returns the group's notes and the notes file's stamp. A group
// without a notes file has empty notes and a zero stamp.
func (s *Store) GroupNotes(g Group) (string, Stamp, error) {
	if err := g.Validate(); err != nil {
		return "", Stamp{}, wrap("read group notes", s.abs(g.Dir()), ErrInvalid, err)
	}
	rel := path.Join(g.Dir(), GroupNotesName)
	data, st, err := s.readRel(rel, MaxNotesSize)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := s.statDir("read group notes", g.Dir()); derr != nil {
			return "", Stamp{}, derr
		}
		return "", Stamp{}, nil
	}
	if err != nil {
		return "", st, wrap("read group notes", s.abs(rel), nil, err)
	}
	return string(data), st, nil
}

// GroupOwner returns the content of the group's owner file (for example
// "root@pam\n") and its stamp.
func (s *Store) GroupOwner(g Group) (string, Stamp, error) {
	if err := g.Validate(); err != nil {
		return "", Stamp{}, wrap("read group owner", s.abs(g.Dir()), ErrInvalid, err)
	}
	rel := path.Join(g.Dir(), OwnerName)
	data, st, err := s.readRel(rel, 64<<10)
	if err != nil {
		return "", st, wrap("read group owner", s.abs(rel), nil, err)
	}
	return string(data), st, nil
}

// SetGroupNotes replaces the group's notes file atomically, keeping its
// owner and mode (a new file gets the group directory's owner and 0644). In
// the run scheme it takes the group lock first, as PBS 4.0.19+ does (so it
// fails with ErrInUse while a backup of the group runs). PBS 3.3.5–4.0.18
// took no lock for group notes; pbsfs takes it there too, deliberately
// stricter: those versions already remove an emptied group under the group
// lock, and notes written into a group being removed would fail or leave a
// group holding only notes.
func (s *Store) SetGroupNotes(ctx context.Context, g Group, notes string) error {
	return s.ReplaceGroupNotes(ctx, g, nil, notes)
}

// ReplaceGroupNotes is SetGroupNotes with the precondition of ReplaceNotes.
// The group lock is never waited for; ctx ending while another group-notes
// save of this store is being written gives ErrInterrupted, nothing written.
func (s *Store) ReplaceGroupNotes(ctx context.Context, g Group, base *string, notes string) error {
	const op = "set group notes"
	rel := path.Join(g.Dir(), GroupNotesName)
	if err := g.Validate(); err != nil {
		return wrap(op, s.abs(g.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(rel))
	}
	if !utf8.ValidString(notes) {
		return wrap(op, s.abs(rel), ErrInvalid, errors.New("notes are not valid UTF-8"))
	}
	if len(notes) > MaxNotesSize {
		return wrap(op, s.abs(rel), ErrInvalid, fmt.Errorf("notes of %d bytes exceed the limit of %d", len(notes), MaxNotesSize))
	}
	done, err := s.beginWrite(ctx, op, s.abs(rel))
	if err != nil {
		return err
	}
	defer done()
	dirSt, err := s.statDir(op, g.Dir())
	if err != nil {
		return err
	}
	s.groupNotesMu.Lock()
	defer s.groupNotesMu.Unlock()
	if err := ctx.Err(); err != nil {
		return wrap(op, s.abs(rel), ErrInterrupted, err)
	}
	if s.locker.RemovesEmptyGroups() { // the run scheme: PBS 4.0.19+ locks the group
		lk, err := s.locker.LockGroup(g.lockPath())
		if err != nil {
			return wrap(op, s.abs(rel), nil, lockErr(err))
		}
		defer lk.Unlock()
	}
	cur, st, err := s.GroupNotes(g)
	if err != nil {
		return err
	}
	if base != nil && cur != *base {
		return wrap(op, s.abs(rel), ErrStale, errors.New("group notes were changed since they were read"))
	}
	if cur == notes {
		return nil
	}
	if _, err := s.replaceFile(g.Dir(), GroupNotesName, []byte(notes), ownerOf(st, dirSt)); err != nil {
		return wrap(op, s.abs(rel), nil, err)
	}
	return nil
}

// CreateGroup makes a group directory (and its namespace and type
// directories) with an owner file holding owner+"\n", as PBS does when a
// group's first backup starts. It is a writer for demos and tests.
func (s *Store) CreateGroup(g Group, owner string) error {
	const op = "create group"
	if err := g.Validate(); err != nil {
		return wrap(op, s.abs(g.Dir()), ErrInvalid, err)
	}
	if s.readOnly {
		return s.refuse(op, s.abs(g.Dir()))
	}
	done, err := s.beginWrite(context.Background(), op, s.abs(g.Dir()))
	if err != nil {
		return err
	}
	defer done()
	parent := s.abs(path.Join(g.NS.Dir(), g.Type))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return wrap(op, parent, nil, err)
	}
	dir := s.abs(g.Dir())
	if err := os.Mkdir(dir, 0o755); err != nil {
		return wrap(op, dir, nil, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, OwnerName), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return wrap(op, dir, nil, err)
	}
	if _, err := f.WriteString(owner + "\n"); err != nil {
		f.Close()
		return wrap(op, f.Name(), nil, err)
	}
	if err := f.Close(); err != nil {
		return wrap(op, dir, nil, err)
	}
	return nil
}
