package activeops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pbsfs/lock"
)

// DefaultDir is PBS's ACTIVE_OPERATIONS_DIR.
const DefaultDir = "/run/proxmox-backup/active-operations"

// LockTimeout is how long PBS waits for the file's lock.
const LockTimeout = 10 * time.Second

// Kind is the kind of an operation.
type Kind int

const (
	Read Kind = iota
	Write
)

func (k Kind) String() string {
	if k == Write {
		return "write"
	}
	return "read"
}

// Counts are the operations of one process, or the sum over all.
type Counts struct {
	Read  int64 `json:"read"`
	Write int64 `json:"write"`
}

// Entry is one process's entry, fields in PBS's order.
type Entry struct {
	PID       uint32 `json:"pid"`
	StartTime uint64 `json:"starttime"`
	Ops       Counts `json:"active_operations"`
}

// ErrUnparsable: the file exists but is not what PBS writes; it is left
// alone and the registration refused.
var ErrUnparsable = errors.New("active-operations file does not parse")

// Options configure New.
type Options struct {
	Dir   string // "" = DefaultDir
	Store string // datastore name: the file's name
	// UID and GID own the files and directory created (-1 = the creator's).
	UID, GID int
	// LegacyTracking is for PBS older than 4.0.21 (see the package doc).
	LegacyTracking bool
	// Timeout for the file's lock; 0 = LockTimeout.
	Timeout time.Duration
	// ProcRoot is where /proc is; "" = "/proc" (tests do not change it).
	ProcRoot string
}

// Tracker registers this process's operations on one datastore.
type Tracker struct {
	o    Options
	self Entry // pid and start time of this process
}

// New returns a tracker for the calling process.
func New(o Options) (*Tracker, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Timeout <= 0 {
		o.Timeout = LockTimeout
	}
	if o.Store == "" || strings.ContainsAny(o.Store, "/") || strings.HasPrefix(o.Store, ".") {
		return nil, fmt.Errorf("active operations: invalid datastore name %q", o.Store)
	}
	pid := os.Getpid()
	ps, ok := readProcStat(o.ProcRoot, pid)
	if !ok {
		return nil, fmt.Errorf("active operations: cannot read %s/%d/stat", o.ProcRoot, pid)
	}
	return &Tracker{o: o, self: Entry{PID: uint32(pid), StartTime: ps.start}}, nil
}

// File is the path of the active-operations file.
func (t *Tracker) File() string { return filepath.Join(t.o.Dir, t.o.Store) }

// Self is this process's pid and start time as registered.
func (t *Tracker) Self() (pid uint32, start uint64) { return t.self.PID, t.self.StartTime }

// Add changes this process's count of kind by delta (+1 to register, -1 to
// deregister) under the file's lock. registered reports whether the own
// entry holds the change: false when, with LegacyTracking, a new entry was
// not added (the caller must then not deregister) or when a deregistration
// found no own entry.
func (t *Tracker) Add(ctx context.Context, kind Kind, delta int64) (registered bool, err error) {
	if err := t.mkdir(); err != nil {
		return false, err
	}
	lk, err := lock.LockFile(ctx, t.File()+".lock", t.o.Timeout, t.o.UID, t.o.GID)
	if err != nil {
		return false, fmt.Errorf("active operations: %w", err)
	}
	defer lk.Unlock()
	list, err := t.read()
	if err != nil {
		return false, err
	}
	kept := list[:0:0]
	own := -1
	otherLive := false
	for _, e := range list {
		ps, alive := readProcStat(t.o.ProcRoot, int(e.PID))
		alive = alive && ps.state != 'Z'
		switch {
		case !alive:
			continue // a dead process: PBS drops it too
		case e.PID == t.self.PID && e.StartTime != t.self.StartTime:
			continue // our own stale entry (pid reused)
		case e.PID == t.self.PID:
			own = len(kept)
		case ps.start == e.StartTime:
			otherLive = true
		}
		kept = append(kept, e)
	}
	switch {
	case own >= 0:
		c := &kept[own].Ops
		if kind == Write {
			c.Write = max(0, c.Write+delta)
		} else {
			c.Read = max(0, c.Read+delta)
		}
		registered = true
		if c.Read == 0 && c.Write == 0 {
			kept = append(kept[:own], kept[own+1:]...) // never stay registered while idle
		}
	case delta > 0 && (!t.o.LegacyTracking || otherLive):
		e := t.self
		if kind == Write {
			e.Ops.Write = delta
		} else {
			e.Ops.Read = delta
		}
		kept = append(kept, e)
		registered = true
	}
	if len(kept) == len(list) && !registered && delta < 0 {
		return false, nil // nothing to change
	}
	return registered, t.write(kept)
}

// read reads and parses the file; missing = empty.
func (t *Tracker) read() ([]Entry, error) {
	data, err := os.ReadFile(t.File())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("active operations: %w", err)
	}
	list, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("active operations %s: %w", t.File(), err)
	}
	return list, nil
}

// Parse parses the content of an active-operations file as PBS does
// (unknown fields ignored; an empty file is an error).
func Parse(data []byte) ([]Entry, error) {
	var list []Entry
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnparsable, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrUnparsable)
	}
	if list == nil {
		return nil, fmt.Errorf("%w: not an array", ErrUnparsable)
	}
	return list, nil
}

// write replaces the file atomically: a dot-named temp file in the same
// directory (no store name starts with a dot), mode 0660 and the owner,
// then rename. An empty list is written as "[]", never as an empty file.
func (t *Tracker) write(list []Entry) error {
	if list == nil {
		list = []Entry{}
	}
	data, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("active operations: %w", err)
	}
	tmp, err := os.CreateTemp(t.o.Dir, "."+t.o.Store+".tmp_")
	if err != nil {
		return fmt.Errorf("active operations: %w", err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("active operations: write %s: %w", t.File(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o660); err != nil {
		return fail(err)
	}
	if t.o.UID != -1 || t.o.GID != -1 {
		if err := tmp.Chown(t.o.UID, t.o.GID); err != nil {
			return fail(err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), t.File()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("active operations: write %s: %w", t.File(), err)
	}
	return nil
}

// mkdir creates the directory (0750, owner) if PBS has not yet.
func (t *Tracker) mkdir() error {
	if _, err := os.Stat(t.o.Dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(t.o.Dir, 0o750); err != nil {
		return fmt.Errorf("active operations: %w", err)
	}
	if t.o.UID != -1 || t.o.GID != -1 {
		if err := os.Chown(t.o.Dir, t.o.UID, t.o.GID); err != nil {
			return fmt.Errorf("active operations: %w", err)
		}
	}
	return nil
}

// Sum reads the file without its lock, as PBS's get_active_operations
// does, and sums the entries of live processes (pid, not a zombie, start
// time matching).
func Sum(file, procRoot string) (Counts, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Counts{}, nil
	}
	if err != nil {
		return Counts{}, err
	}
	list, err := Parse(data)
	if err != nil {
		return Counts{}, err
	}
	var c Counts
	for _, e := range list {
		if ps, ok := readProcStat(procRoot, int(e.PID)); ok && ps.state != 'Z' && ps.start == e.StartTime {
			c.Read += e.Ops.Read
			c.Write += e.Ops.Write
		}
	}
	return c, nil
}

type procStat struct {
	state byte
	start uint64
}

// readProcStat reads state (field 3) and starttime (field 22) of
// /proc/<pid>/stat, parsing after the last ")" (the command name may hold
// blanks and parentheses); ok is false if the process does not exist or
// the pid field does not match.
func readProcStat(procRoot string, pid int) (procStat, bool) {
	if pid <= 0 {
		return procStat{}, false
	}
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	s := string(data)
	open := strings.IndexByte(s, ' ')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < 0 || s[:open] != strconv.Itoa(pid) {
		return procStat{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64) // field 22 overall
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], start: start}, true
}
