package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Scheme names one of the PBS locking schemes.
type Scheme string

// The three supported schemes (see the package documentation).
const (
	Run    Scheme = "run"
	Dirs   Scheme = "dirs"
	Legacy Scheme = "legacy"
)

// ParseScheme validates a scheme name ("run", "dirs" or "legacy").
func ParseScheme(s string) (Scheme, error) {
	switch sc := Scheme(s); sc {
	case Run, Dirs, Legacy:
		return sc, nil
	}
	return "", fmt.Errorf("unknown locking scheme %q (want run, dirs or legacy)", s)
}

const (
	// DefaultDir is PBS's DATASTORE_LOCKS_DIR.
	DefaultDir = "/run/proxmox-backup/locks"
	// DefaultOldLockingFlag exists (until reboot) after upgrading PBS from a
	// version < 3.3.5; PBS then keeps using directory flocks.
	DefaultOldLockingFlag = "/run/proxmox-backup/old-locking"
	// ManifestTimeout is how long PBS waits for a manifest lock.
	ManifestTimeout = 5 * time.Second
)

// manifestLockName is PBS's MANIFEST_LOCK_NAME.
const manifestLockName = ".index.json.lck"

// Sentinel errors. Errors returned by this package wrap them together with
// the lock path.
var (
	// ErrWouldBlock: the lock is held by someone else (non-blocking attempt).
	ErrWouldBlock = errors.New("lock is held by another operation")
	// ErrTimeout: a waiting attempt (manifest lock) timed out.
	ErrTimeout = errors.New("timed out waiting for lock")
	// ErrReplaced: the lock file was unlinked or replaced between open and
	// flock (double-stat mismatch), as PBS reports it.
	ErrReplaced = errors.New("could not acquire lock, another thread modified the lock file")
	// ErrUnsupported: a PBS version or scheme we refuse to write under.
	ErrUnsupported = errors.New("unsupported PBS version or locking scheme")
)

// Config configures a Locker.
type Config struct {
	Scheme Scheme
	Dir    string // lock dir root (run/dirs); "" = DefaultDir
	Store  string // datastore name used in lock paths
	Base   string // datastore base directory (dirs/legacy flock directories below it)
	// UID and GID own created lock files and lock directories; -1 keeps the
	// creator's. Note that 0 means root: use BackupOwner() or -1.
	UID, GID int
}

// Path names a lockable object: namespace components plus the path below the
// namespace, "vm/100" for a group, "vm/100/2024-06-05T14:22:01Z" for a
// snapshot.
type Path struct {
	NS  []string
	Rel string
}

// String returns "[ns/a/ns/b/]rel" (the datastore-relative directory).
func (p Path) String() string { return filepath.Join(NSDir(p.NS), p.Rel) }

// Locker takes locks for one datastore in one scheme. It is immutable and
// safe for concurrent use.
type Locker struct {
	cfg Config

	// testHookLocked, if set (tests only), runs after flock succeeded on a
	// lock file and before the double stat.
	testHookLocked func(path string)
}

// New validates cfg and returns a Locker.
func New(cfg Config) (*Locker, error) {
	if _, err := ParseScheme(string(cfg.Scheme)); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir
	}
	if cfg.UID < -1 || cfg.GID < -1 {
		return nil, fmt.Errorf("lock: invalid owner %d:%d", cfg.UID, cfg.GID)
	}
	switch cfg.Scheme {
	case Run, Dirs:
		if err := checkComponent(cfg.Store); err != nil {
			return nil, fmt.Errorf("lock: invalid datastore name %q: %w", cfg.Store, err)
		}
		if !filepath.IsAbs(cfg.Dir) {
			return nil, fmt.Errorf("lock: lock directory %q is not absolute", cfg.Dir)
		}
	}
	switch cfg.Scheme {
	case Dirs, Legacy:
		if cfg.Base == "" {
			return nil, fmt.Errorf("lock: scheme %s needs the datastore base directory", cfg.Scheme)
		}
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if cfg.Base != "" {
		cfg.Base = filepath.Clean(cfg.Base)
	}
	return &Locker{cfg: cfg}, nil
}

// Scheme returns the configured scheme.
func (l *Locker) Scheme() Scheme { return l.cfg.Scheme }

// Config returns the effective configuration (Dir defaulted, paths cleaned).
func (l *Locker) Config() Config { return l.cfg }

// RemovesEmptyGroups reports whether PBS, in this scheme, removes a group
// directory once its last snapshot is gone (fix #3336, 3.3.5+, not in
// old-locking mode). True only for Run.
func (l *Locker) RemovesEmptyGroups() bool { return l.cfg.Scheme == Run }

// Lock is a held lock. The zero value and nil are unlocked.
type Lock struct {
	mu   sync.Mutex
	path string
	f    *os.File     // file or directory fd holding the flock, or nil
	fl   *flock.Flock // manifest locks taken through gofrs/flock, or nil
}

// Path returns the lock file or directory the lock is held on.
func (l *Lock) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}

// Unlock releases the lock by closing its file descriptor. It is idempotent
// and safe for concurrent use.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.f != nil {
		// Closing the only descriptor of the open file description drops
		// the flock.
		err = l.f.Close()
		l.f = nil
	}
	if l.fl != nil {
		err = errors.Join(err, l.fl.Unlock())
		l.fl = nil
	}
	if err != nil {
		return fmt.Errorf("unlock %q: %w", l.path, err)
	}
	return nil
}

// LockGroup takes the exclusive, non-blocking backup group lock.
func (l *Locker) LockGroup(p Path) (*Lock, error) {
	if err := p.check(2); err != nil {
		return nil, err
	}
	path := l.GroupLockPath(p)
	if l.cfg.Scheme == Run {
		lk, err := l.lockFileNB(path, true)
		if err != nil {
			return nil, fmt.Errorf("unable to acquire backup group lock %q: %w", path, err)
		}
		return lk, nil
	}
	return l.lockDirNB(p.String(), "backup group", true)
}

// LockSnapshot takes the non-blocking snapshot lock, shared or exclusive.
func (l *Locker) LockSnapshot(p Path, shared bool) (*Lock, error) {
	if err := p.check(3); err != nil {
		return nil, err
	}
	path := l.SnapshotLockPath(p)
	if l.cfg.Scheme == Run {
		lk, err := l.lockFileNB(path, !shared)
		if err != nil {
			what := "snapshot lock"
			if shared {
				what = "shared snapshot lock"
			}
			return nil, fmt.Errorf("unable to acquire %s %q: %w", what, path, err)
		}
		return lk, nil
	}
	return l.lockDirNB(p.String(), "snapshot", !shared)
}

// LockManifest takes the exclusive manifest lock of a snapshot, waiting up to
// timeout (PBS: ManifestTimeout). A timeout <= 0 makes a single non-blocking
// attempt (ErrWouldBlock), like PBS's lock_file with a zero timeout. The
// wait ends early when ctx is done (an interrupted FUSE request): the error
// then wraps ctx.Err() (context.Canceled), not ErrTimeout, and no lock is held.
func (l *Locker) LockManifest(ctx context.Context, p Path, timeout time.Duration) (*Lock, error) {
	if err := p.check(3); err != nil {
		return nil, err
	}
	path := l.ManifestLockPath(p)
	var lk *Lock
	var err error
	if l.cfg.Scheme == Legacy {
		// The lock file lives inside the snapshot directory: resolved
		// beneath the datastore, and the directory is never re-created
		// if the snapshot is gone.
		lk, err = l.lockFileBeneathWait(ctx, filepath.Join(p.String(), manifestLockName), timeout)
	} else {
		lk, err = l.lockFileWait(ctx, path, timeout, true)
	}
	if err != nil {
		return nil, fmt.Errorf("unable to acquire manifest lock %q: %w", path, err)
	}
	return lk, nil
}

// RemoveSnapshotLockFiles removes the lock files PBS removes after destroying
// a snapshot (§6.6). Errors are ignored, as in PBS.
//
//   - Run: the manifest and the snapshot lock file.
//   - Dirs: the manifest lock file, then its per-snapshot directory if empty.
//     (PBS 3.2.4 leaves that empty directory behind; removing it is tidier
//     and only races with a manifest lock on the already destroyed snapshot.)
//   - Legacy: nothing; the lock file was inside the removed snapshot dir.
func (l *Locker) RemoveSnapshotLockFiles(p Path) {
	if p.check(3) != nil {
		return
	}
	switch l.cfg.Scheme {
	case Run:
		_ = os.Remove(l.ManifestLockPath(p))
		_ = os.Remove(l.SnapshotLockPath(p))
	case Dirs:
		m := l.ManifestLockPath(p)
		_ = os.Remove(m)
		_ = os.Remove(filepath.Dir(m)) // rmdir: fails unless empty
	}
}

// RemoveGroupLockFile removes the group lock file after the group directory
// was removed (Run only; the directory schemes have no group lock file).
func (l *Locker) RemoveGroupLockFile(p Path) {
	if p.check(2) != nil || l.cfg.Scheme != Run {
		return
	}
	_ = os.Remove(l.GroupLockPath(p))
}

// check validates the path: NS components and exactly n Rel components, each
// a plain name (no "/", ".", "..", NUL or empty components).
func (p Path) check(n int) error {
	for _, c := range p.NS {
		if err := checkComponent(c); err != nil {
			return fmt.Errorf("lock: invalid namespace component %q: %w", c, err)
		}
	}
	parts := strings.Split(p.Rel, "/")
	if len(parts) != n {
		return fmt.Errorf("lock: invalid object path %q: want %d components", p.Rel, n)
	}
	for _, c := range parts {
		if err := checkComponent(c); err != nil {
			return fmt.Errorf("lock: invalid object path %q: %w", p.Rel, err)
		}
	}
	return nil
}

func checkComponent(c string) error {
	switch {
	case c == "":
		return errors.New("empty name")
	case c == "." || c == "..":
		return errors.New("relative name")
	case strings.ContainsAny(c, "/\x00"):
		return errors.New("contains '/' or NUL")
	}
	return nil
}
