package datastore

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/activeops"
	"pbsfs/pbsconfig"
)

// Living beside PBS (pbs-format.md §10). With Options.PBS set, the store
// follows the datastore's section of datastore.cfg and registers its
// operations in PBS's active-operations file:
//
//   - Every change (notes, group notes, forget, group removal) runs §10.8:
//     config lock → datastore.cfg → maintenance mode (Write) → mount check
//     of a removable datastore → refuse on an S3 backend → register a Write
//     → release the config lock; the Write is deregistered when the change
//     is done.
//   - Reads go through the root descriptor, which is opened only while
//     pbsfs is in use, by the same procedure for a Read (with the identity
//     of the directory checked against the one opened at mount), and kept
//     for Linger after the last use; then it is closed and the Read
//     deregistered, in that order. So PBS's active-operations sum is 0 only
//     when pbsfs holds no descriptor on the datastore, and since the
//     descriptor is only ever opened under the config lock after the mode
//     check, an unmount task that saw 0 under its mode finds nothing of
//     pbsfs's in the way.
//   - Recheck (the revalidator calls it every pass) re-reads datastore.cfg
//     when its stamp changes and, for a removable datastore, looks at the
//     mount: a mode or state that forbids reads makes every new access fail
//     with ErrUnavailable at once and lets the descriptor go as soon as the
//     requests in flight are done; lifting it serves again.
//
// Without Options.PBS (no PBS on the host) the root descriptor is opened at
// Open and kept, and nothing is checked or registered.

// DefaultLinger is how long the root descriptor and the Read registration
// outlive the last access.
const DefaultLinger = time.Second

// PBSOptions connect a Store to the PBS installed on the host.
type PBSOptions struct {
	ConfigDir string // "" = pbsconfig.DefaultDir
	Name      string // the datastore's PBS name (its section)
	// ActiveOps configures the active-operations tracker (Store is set
	// from Name).
	ActiveOps activeops.Options
	// UID and GID own a config lock file pbsfs has to create.
	UID, GID int
	Linger   time.Duration // 0 = DefaultLinger
	// MountInfo and ByUUIDDir are where the mount check of a removable
	// datastore looks ("" = /proc/self/mountinfo, /dev/disk/by-uuid).
	MountInfo string
	ByUUIDDir string
}

// tagged gives err a kind without changing its text.
type tagged struct{ kind, err error }

func (t *tagged) Error() string   { return t.err.Error() }
func (t *tagged) Unwrap() []error { return []error{t.kind, t.err} }

func tag(kind error, format string, args ...any) error {
	return &tagged{kind: kind, err: fmt.Errorf(format, args...)}
}

// guard is the state described above.
type guard struct {
	o     *PBSOptions // nil: no PBS
	path  string
	log   *slog.Logger
	ops   *activeops.Tracker
	dev   uint64 // identity of the root opened at Open
	ino   uint64
	wake  func() // called when the store becomes active (SetOnActivate)
	opsMu sync.Mutex

	mu       sync.Mutex
	fd       int // root O_PATH descriptor; -1 = closed
	users    int // accesses in flight
	lastUse  time.Time
	timer    *time.Timer
	readReg  bool  // a Read is registered (fd open, or closing)
	blocked  error // reads refused until Recheck finds otherwise
	section  *pbsconfig.Datastore
	stamp    pbsconfig.Stamp
	stampSet bool
}

func newGuard(path string, fd int, st *unix.Stat_t, o *PBSOptions, log *slog.Logger) (*guard, error) {
	g := &guard{o: o, path: path, log: log, fd: fd, dev: st.Dev, ino: st.Ino}
	if o == nil {
		return g, nil
	}
	if o.ConfigDir == "" {
		o.ConfigDir = pbsconfig.DefaultDir
	}
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	ao := o.ActiveOps
	ao.Store = o.Name
	ops, err := activeops.New(ao)
	if err != nil {
		return nil, err
	}
	g.ops = ops
	// The descriptor Open made is closed until the first access: opening
	// it again goes through the checks and the registration.
	unix.Close(fd)
	g.fd = -1
	if _, err := g.recheck(true); err != nil {
		return nil, err
	}
	return g, nil
}

// Section returns the datastore's section as last read (nil without PBS).
func (s *Store) Section() *pbsconfig.Datastore {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.g.section
}

// Blocked returns why reads are refused now, or nil.
func (s *Store) Blocked() error {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.g.blocked
}

// Active reports whether the store holds its root descriptor (always true
// without PBS).
func (s *Store) Active() bool {
	if s.g.o == nil {
		return true
	}
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.g.fd >= 0
}

// SetOnActivate sets a function called (in its own goroutine) whenever the
// store goes from idle to active; the revalidator uses it to look for what
// changed while pbsfs held nothing.
func (s *Store) SetOnActivate(fn func()) {
	s.g.mu.Lock()
	s.g.wake = fn
	s.g.mu.Unlock()
}

// Recheck re-reads datastore.cfg if it changed (and, for a removable
// datastore, the mount) and applies what it says. It reports whether the
// state changed. Without PBS it does nothing.
func (s *Store) Recheck() (bool, error) {
	if s.g.o == nil {
		return false, nil
	}
	return s.g.recheck(false)
}

// recheck is Recheck; force reads the file even if its stamp is unchanged.
func (g *guard) recheck(force bool) (bool, error) {
	st, err := pbsconfig.StatFile(g.o.ConfigDir)
	if err != nil {
		return false, err
	}
	g.mu.Lock()
	sec, old := g.section, g.blocked
	same := g.stampSet && st == g.stamp
	g.mu.Unlock()
	if same && !force && (sec == nil || !sec.Removable()) {
		return false, nil
	}
	var blocked error
	if !same || force {
		sec, blocked = g.loadSection(pbsconfig.Read)
	} else if sec != nil {
		blocked = g.checkSection(sec, pbsconfig.Read)
	}
	g.mu.Lock()
	g.section, g.stamp, g.stampSet = sec, st, true
	g.blocked = blocked
	closeNow := blocked != nil && g.fd >= 0 && g.users == 0
	g.mu.Unlock()
	changed := (old == nil) != (blocked == nil) || (old != nil && blocked != nil && old.Error() != blocked.Error())
	if changed {
		if blocked != nil {
			g.log.Warn("datastore unavailable: refusing access and letting go of it", "datastore", g.path, "reason", blocked)
		} else {
			g.log.Info("datastore available again", "datastore", g.path)
		}
	}
	if closeNow {
		g.deactivate(true)
	}
	return changed, nil
}

// loadSection reads datastore.cfg and checks the section for op.
func (g *guard) loadSection(op pbsconfig.Operation) (*pbsconfig.Datastore, error) {
	c, _, exists, err := pbsconfig.Load(g.o.ConfigDir)
	if err != nil {
		return nil, tag(ErrUnavailable, "%w (PBS cannot serve any datastore with it either)", err)
	}
	sec := c.Lookup(g.o.Name)
	if sec == nil {
		where := filepath.Join(g.o.ConfigDir, pbsconfig.DatastoreFile)
		if !exists {
			return nil, tag(ErrUnavailable, "%s does not exist", where)
		}
		return nil, tag(ErrUnavailable, "datastore '%s' is not in %s (removed?)", g.o.Name, where)
	}
	return sec, g.checkSection(sec, op)
}

// checkSection is steps 3–5 of §10.8 for op: maintenance mode, mount of
// a removable datastore, S3 backend (Write only).
func (g *guard) checkSection(sec *pbsconfig.Datastore, op pbsconfig.Operation) error {
	if err := sec.Maintenance.Check(op); err != nil {
		kind := ErrUnavailable
		if op == pbsconfig.Write && sec.Maintenance.AllowsReads() {
			kind = ErrReadOnly
		}
		return tag(kind, "datastore '%s' is unavailable: %w", sec.Name, err)
	}
	if sec.Removable() {
		if err := sec.Mounted(g.o.MountInfo, g.o.ByUUIDDir); err != nil {
			return tag(ErrUnavailable, "datastore '%s' is not mounted: %w", sec.Name, err)
		}
	}
	if op == pbsconfig.Write && !sec.Backend.Local() {
		why := "an S3-backed datastore: this directory is only PBS's local cache, and a change made here " +
			"would be undone by the next s3-refresh (or break backups after GC); make changes through PBS"
		if sec.Backend.Err != nil {
			why = fmt.Sprintf("a datastore with a backend pbsfs does not know (%v); make changes through PBS", sec.Backend.Err)
		}
		return tag(ErrReadOnly, "datastore '%s' is %s", sec.Name, why)
	}
	return nil
}

// lockConfig takes PBS's config lock; a timeout means PBS is busy with the
// datastore configuration (an s3-refresh holds it for the whole download).
func (g *guard) lockConfig(ctx context.Context) (func(), error) {
	lk, err := pbsconfig.LockConfig(ctx, g.o.ConfigDir, 0, g.o.UID, g.o.GID)
	if err != nil {
		return nil, err
	}
	return func() { lk.Unlock() }, nil
}

// beginWrite is §10.8 for a change; done deregisters it.
func (s *Store) beginWrite(ctx context.Context, op, path string) (done func(), err error) {
	g := s.g
	if g.o == nil {
		if s.s3Hint.Load() {
			return nil, wrap(op, path, ErrReadOnly, errS3)
		}
		return func() {}, nil
	}
	unlock, err := g.lockConfig(ctx)
	if err != nil {
		return nil, wrap(op, path, nil, err)
	}
	defer unlock()
	if _, err := g.loadSection(pbsconfig.Write); err != nil {
		return nil, wrap(op, path, nil, err)
	}
	g.opsMu.Lock()
	reg, err := g.ops.Add(ctx, activeops.Write, 1)
	g.opsMu.Unlock()
	if err != nil {
		return nil, wrap(op, path, ErrIO, fmt.Errorf("cannot register the change with PBS: %w", err))
	}
	if !reg {
		g.log.Info("not registered in PBS's active operations (PBS < 4.0.21 would then miss its own)", "op", op, "path", path)
	}
	return func() {
		if !reg {
			return
		}
		g.opsMu.Lock()
		defer g.opsMu.Unlock()
		if _, err := g.ops.Add(context.Background(), activeops.Write, -1); err != nil {
			g.log.Error("cannot deregister a change from PBS's active operations", "op", op, "err", err)
		}
	}, nil
}

// CheckWrite reports whether PBS's configuration refuses changes now
// (ErrReadOnly, ErrUnavailable), read afresh without the config lock: a
// preflight for a caller about to start a change. The change itself checks
// again under the lock.
func (s *Store) CheckWrite() error {
	if s.readOnly {
		return s.refuse("check", s.path)
	}
	if s.g.o == nil {
		if s.s3Hint.Load() {
			return wrap("check", s.path, ErrReadOnly, errS3)
		}
		return nil
	}
	if _, err := s.g.loadSection(pbsconfig.Write); err != nil {
		return wrap("check", s.path, nil, err)
	}
	return nil
}
