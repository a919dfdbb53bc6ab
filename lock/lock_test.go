package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const shortTimeout = 300 * time.Millisecond

var (
	snapP   = Path{Rel: "vm/100/" + tm}
	groupP  = Path{Rel: "vm/100"}
	nsSnapP = Path{NS: []string{"a", "b"}, Rel: "host/my-host.example/" + tm}
	nsGrpP  = Path{NS: []string{"a", "b"}, Rel: "host/my-host.example"}
)

// testOwner is the owner configured for created lock files: a foreign one
// when running as root (so the chown is visible), else our own.
func testOwner() (int, int) {
	if os.Geteuid() == 0 {
		return 4242, 4243
	}
	return os.Getuid(), os.Getgid()
}

// setup returns a config with Dir and Base in temporary directories and the
// datastore directories of snapP and nsSnapP created.
func setup(t *testing.T, s Scheme) Config {
	t.Helper()
	uid, gid := testOwner()
	cfg := Config{Scheme: s, Dir: filepath.Join(t.TempDir(), "locks"), Store: "store1", Base: t.TempDir(), UID: uid, GID: gid}
	for _, p := range []Path{snapP, nsSnapP} {
		if err := os.MkdirAll(filepath.Join(cfg.Base, p.String()), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

var schemes = []Scheme{Run, Dirs, Legacy}

func forSchemes(t *testing.T, f func(t *testing.T, cfg Config, l *Locker)) {
	for _, s := range schemes {
		t.Run(string(s), func(t *testing.T) {
			cfg := setup(t, s)
			f(t, cfg, mustNew(t, cfg))
		})
	}
}

func unlock(t *testing.T, lk *Lock) {
	t.Helper()
	if err := lk.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := lk.Unlock(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestGroupLockAcrossProcesses(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		for _, p := range []Path{groupP, nsGrpP} {
			h := hold(t, helperArgs{Cfg: cfg, P: p, Kind: "group"})
			_, err := l.LockGroup(p)
			wantWouldBlock(t, err, l.GroupLockPath(p))
			// Other objects are independent.
			lk, err := l.LockSnapshot(Path{NS: p.NS, Rel: p.Rel + "/" + tm}, false)
			if err != nil {
				t.Fatalf("snapshot lock while group locked: %v", err)
			}
			unlock(t, lk)
			h.release(t)

			lk, err = l.LockGroup(p)
			if err != nil {
				t.Fatalf("after release: %v", err)
			}
			// And the other way round: our lock blocks the other process.
			if msg := tryHold(t, helperArgs{Cfg: cfg, P: p, Kind: "group"}); !strings.Contains(msg, ErrWouldBlock.Error()) {
				t.Errorf("helper: %s", msg)
			}
			unlock(t, lk)
		}
	})
}

func TestSnapshotSharedAcrossProcesses(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		h := hold(t, helperArgs{Cfg: cfg, P: snapP, Kind: "snap-shared"})
		sh, err := l.LockSnapshot(snapP, true)
		if err != nil {
			t.Fatalf("shared+shared: %v", err)
		}
		_, err = l.LockSnapshot(snapP, false)
		wantWouldBlock(t, err, l.SnapshotLockPath(snapP))
		unlock(t, sh)
		_, err = l.LockSnapshot(snapP, false) // the helper still holds its shared lock
		wantWouldBlock(t, err, l.SnapshotLockPath(snapP))
		h.release(t)

		ex, err := l.LockSnapshot(snapP, false)
		if err != nil {
			t.Fatalf("exclusive after release: %v", err)
		}
		unlock(t, ex)
	})
}

func TestSnapshotExclusiveAcrossProcesses(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		for _, p := range []Path{snapP, nsSnapP} {
			h := hold(t, helperArgs{Cfg: cfg, P: p, Kind: "snap-excl"})
			for _, shared := range []bool{true, false} {
				_, err := l.LockSnapshot(p, shared)
				wantWouldBlock(t, err, l.SnapshotLockPath(p))
				if l.Scheme() == Run && shared && !strings.Contains(err.Error(), "unable to acquire shared snapshot lock") {
					t.Errorf("error text: %v", err)
				}
			}
			h.release(t)
			for _, shared := range []bool{true, false} {
				lk, err := l.LockSnapshot(p, shared)
				if err != nil {
					t.Fatalf("after release (shared=%v): %v", shared, err)
				}
				unlock(t, lk)
			}
		}
	})
}

func TestManifestLockAcrossProcesses(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		path := l.ManifestLockPath(snapP)
		h := hold(t, helperArgs{Cfg: cfg, P: snapP, Kind: "manifest"})
		_, err := l.LockManifest(context.Background(), snapP, shortTimeout)
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), fmt.Sprintf("%q", path)) {
			t.Fatalf("want ErrTimeout naming %s, got %v", path, err)
		}
		_, err = l.LockManifest(context.Background(), snapP, 0)
		wantWouldBlock(t, err, path)
		// The snapshot lock is a different lock.
		lk, err := l.LockSnapshot(snapP, false)
		if err != nil {
			t.Fatal(err)
		}
		unlock(t, lk)

		// A waiting attempt gets the lock once the holder releases it.
		got := make(chan error, 1)
		var mlk *Lock
		go func() {
			var err error
			mlk, err = l.LockManifest(context.Background(), snapP, time.Minute)
			got <- err
		}()
		time.Sleep(50 * time.Millisecond) // let it start waiting (not asserted)
		h.release(t)
		if err := <-got; err != nil {
			t.Fatalf("waiting manifest lock: %v", err)
		}
		if msg := tryHoldManifest(t, cfg); !strings.Contains(msg, ErrTimeout.Error()) {
			t.Errorf("helper while we hold the manifest lock: %s", msg)
		}
		unlock(t, mlk)
	})
}

// tryHoldManifest runs a helper that tries the manifest lock with a short
// timeout.
func tryHoldManifest(t *testing.T, cfg Config) string {
	t.Helper()
	return tryHold(t, helperArgs{Cfg: cfg, P: snapP, Kind: "manifest", Timeout: shortTimeout})
}

// TestRawPBSInterop: a process that flocks the literal PBS paths (§6.2–6.4)
// directly, as PBS does, conflicts with our locks.
func TestRawPBSInterop(t *testing.T) {
	t.Run("run", func(t *testing.T) {
		cfg := setup(t, Run)
		l := mustNew(t, cfg)
		root := filepath.Join(cfg.Dir, "store1")
		if err := os.MkdirAll(filepath.Join(root, "a:b"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			raw   string
			lock  func() (*Lock, error)
			timed bool
		}{
			{filepath.Join(root, "vm-100"), func() (*Lock, error) { return l.LockGroup(groupP) }, false},
			{filepath.Join(root, `vm-100-`+tmEs), func() (*Lock, error) { return l.LockSnapshot(snapP, true) }, false},
			{filepath.Join(root, `vm-100-`+tmEs+`-.index.json.lck`), func() (*Lock, error) { return l.LockManifest(context.Background(), snapP, shortTimeout) }, true},
			{filepath.Join(root, `a:b/host-my\x2dhost.example-`+tmEs), func() (*Lock, error) { return l.LockSnapshot(nsSnapP, false) }, false},
		} {
			h := hold(t, helperArgs{Kind: "raw-file-ex", Raw: c.raw})
			_, err := c.lock()
			if c.timed && !errors.Is(err, ErrTimeout) || !c.timed && !errors.Is(err, ErrWouldBlock) {
				t.Errorf("%s held by raw flock: got %v", c.raw, err)
			}
			h.release(t)
			lk, err := c.lock()
			if err != nil {
				t.Fatalf("%s after release: %v", c.raw, err)
			}
			unlock(t, lk)
		}
	})
	for _, s := range []Scheme{Dirs, Legacy} {
		t.Run(string(s), func(t *testing.T) {
			cfg := setup(t, s)
			l := mustNew(t, cfg)
			snapDir := filepath.Join(cfg.Base, "ns/a/ns/b/host/my-host.example", tm)
			h := hold(t, helperArgs{Kind: "raw-dir-sh", Raw: snapDir})
			if _, err := l.LockSnapshot(nsSnapP, false); !errors.Is(err, ErrWouldBlock) {
				t.Errorf("exclusive vs raw shared dir flock: %v", err)
			}
			lk, err := l.LockSnapshot(nsSnapP, true)
			if err != nil {
				t.Errorf("shared vs raw shared dir flock: %v", err)
			} else {
				unlock(t, lk)
			}
			h.release(t)

			h = hold(t, helperArgs{Kind: "raw-dir-ex", Raw: filepath.Join(cfg.Base, "vm/100")})
			if _, err := l.LockGroup(groupP); !errors.Is(err, ErrWouldBlock) {
				t.Errorf("group vs raw dir flock: %v", err)
			}
			h.release(t)

			var raw string
			if s == Dirs {
				raw = filepath.Join(cfg.Dir, "store1/vm/100", tm, tm+".index.json.lck")
			} else {
				raw = filepath.Join(cfg.Base, "vm/100", tm, ".index.json.lck")
			}
			if err := os.MkdirAll(filepath.Dir(raw), 0o755); err != nil {
				t.Fatal(err)
			}
			h = hold(t, helperArgs{Kind: "raw-file-ex", Raw: raw})
			if _, err := l.LockManifest(context.Background(), snapP, shortTimeout); !errors.Is(err, ErrTimeout) {
				t.Errorf("manifest vs raw flock on %s: %v", raw, err)
			}
			h.release(t)
		})
	}
}

// TestSameProcessConflict: flocks belong to the open file description, so two
// Locks in one process conflict like two processes.
func TestSameProcessConflict(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		a, err := l.LockSnapshot(snapP, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.LockSnapshot(snapP, true); !errors.Is(err, ErrWouldBlock) {
			t.Errorf("second lock in the same process: %v", err)
		}
		unlock(t, a)
		m, err := l.LockManifest(context.Background(), snapP, ManifestTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.LockManifest(context.Background(), snapP, shortTimeout); !errors.Is(err, ErrTimeout) {
			t.Errorf("second manifest lock in the same process: %v", err)
		}
		unlock(t, m)
	})
}

// TestManifestWaitCanceled: a manifest lock wait ends as soon as its
// context is canceled — with context.Canceled, not ErrTimeout — and leaves
// nothing locked; an already canceled context makes no attempt at all.
func TestManifestWaitCanceled(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		m, err := l.LockManifest(context.Background(), snapP, 0)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err = l.LockManifest(ctx, snapP, time.Hour)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Errorf("wait canceled: %v, want context.Canceled", err)
		}
		if _, err := l.LockManifest(ctx, snapP, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("already canceled: %v, want context.Canceled", err)
		}
		unlock(t, m)
		if _, err := l.LockManifest(ctx, snapP, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("already canceled, lock free: %v, want context.Canceled", err)
		}
		m, err = l.LockManifest(context.Background(), snapP, 0)
		if err != nil {
			t.Fatalf("lock after the canceled waits: %v", err)
		}
		unlock(t, m)
	})
}

// TestDoubleStatReplaced: another process unlinks and re-creates the lock
// file between our open+flock and the stat of the path (injected via the test
// hook at exactly that point) → ErrReplaced, and nothing stays locked.
func TestDoubleStatReplaced(t *testing.T) {
	for _, s := range schemes {
		t.Run(string(s), func(t *testing.T) {
			cfg := setup(t, s)
			l := mustNew(t, cfg)
			type lockCase struct {
				name string
				path string
				lock func() (*Lock, error)
			}
			cases := []lockCase{
				{"manifest", l.ManifestLockPath(snapP), func() (*Lock, error) { return l.LockManifest(context.Background(), snapP, shortTimeout) }},
			}
			if s == Run {
				cases = append(cases,
					lockCase{"snapshot", l.SnapshotLockPath(snapP), func() (*Lock, error) { return l.LockSnapshot(snapP, true) }},
					lockCase{"group", l.GroupLockPath(groupP), func() (*Lock, error) { return l.LockGroup(groupP) }})
			}
			for _, c := range cases {
				h := hold(t, helperArgs{Kind: "none", Raw: c.path})
				l.testHookLocked = func(string) { h.do(t, "replace") }
				_, err := c.lock()
				l.testHookLocked = nil
				h.release(t)
				if !errors.Is(err, ErrReplaced) || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.path)) {
					t.Fatalf("%s: want ErrReplaced naming %s, got %v", c.name, c.path, err)
				}
				// The failed attempt released its lock; the new file is lockable.
				lk, err := c.lock()
				if err != nil {
					t.Fatalf("%s: after ErrReplaced: %v", c.name, err)
				}
				unlock(t, lk)
			}
		})
	}
}

// TestLockFileUnlinkedWhileHeld: PBS deletes lock files while holding them
// (snapshot destroy). A later acquirer must get a fresh file and a valid
// lock, which then really excludes others.
func TestLockFileUnlinkedWhileHeld(t *testing.T) {
	cfg := setup(t, Run)
	l := mustNew(t, cfg)
	for _, c := range []struct {
		kind string
		p    Path
		path string
		lock func() (*Lock, error)
	}{
		{"snap-excl", snapP, l.SnapshotLockPath(snapP), func() (*Lock, error) { return l.LockSnapshot(snapP, false) }},
		{"group", groupP, l.GroupLockPath(groupP), func() (*Lock, error) { return l.LockGroup(groupP) }},
		// waiting: picks up the re-created file while the old one is still held
		{"manifest", snapP, l.ManifestLockPath(snapP), func() (*Lock, error) { return l.LockManifest(context.Background(), snapP, time.Minute) }},
	} {
		h := hold(t, helperArgs{Cfg: cfg, P: c.p, Kind: c.kind})
		old, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		var lk *Lock
		if c.kind == "manifest" {
			go func() {
				var err error
				lk, err = c.lock()
				got <- err
			}()
			time.Sleep(50 * time.Millisecond) // let it start waiting (not asserted)
			h.do(t, "unlink")
		} else {
			h.do(t, "unlink")
			go func() {
				var err error
				lk, err = c.lock()
				got <- err
			}()
		}
		if err := <-got; err != nil {
			t.Fatalf("%s: lock after the held file was unlinked: %v", c.kind, err)
		}
		cur, err := os.Stat(c.path)
		if err != nil || os.SameFile(old, cur) {
			t.Fatalf("%s: expected a fresh lock file (%v)", c.kind, err)
		}
		if msg := tryHold(t, helperArgs{Cfg: cfg, P: c.p, Kind: c.kind, Timeout: shortTimeout}); !strings.HasPrefix(msg, "error:") {
			t.Errorf("%s: helper got the lock we hold: %s", c.kind, msg)
		}
		h.release(t)
		unlock(t, lk)
	}
}

// TestLockFileModeAndOwner: lock files are 0660 whatever the umask, owned by
// the configured owner, and so are the lock directories we create; no
// temporary files are left behind.
func TestLockFileModeAndOwner(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	uid, gid := testOwner()
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		var files []string
		for _, p := range []Path{snapP, nsSnapP} {
			m, err := l.LockManifest(context.Background(), p, ManifestTimeout)
			if err != nil {
				t.Fatal(err)
			}
			unlock(t, m)
			files = append(files, l.ManifestLockPath(p))
			if l.Scheme() == Run {
				for _, lk := range []func() (*Lock, error){
					func() (*Lock, error) { return l.LockSnapshot(p, true) },
					func() (*Lock, error) { return l.LockGroup(Path{NS: p.NS, Rel: filepath.Dir(p.Rel)}) },
				} {
					x, err := lk()
					if err != nil {
						t.Fatal(err)
					}
					files = append(files, x.Path())
					unlock(t, x)
				}
			}
		}
		for _, f := range files {
			checkOwner(t, f, 0o660, uid, gid)
		}
		if l.Scheme() == Legacy {
			return
		}
		// Every directory created below Dir.
		err := filepath.WalkDir(cfg.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.Contains(d.Name(), ".tmp_") {
				t.Errorf("temporary file left behind: %s", path)
			}
			if d.IsDir() {
				checkOwner(t, path, 0o700, uid, gid) // 0777 minus umask 077
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func checkOwner(t *testing.T, path string, perm os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != perm || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", path, fi.Mode().Perm(), st.Uid, st.Gid, perm, uid, gid)
	}
}

// TestKeepOwner: UID/GID -1 keep the creator's owner.
func TestKeepOwner(t *testing.T) {
	cfg := setup(t, Run)
	cfg.UID, cfg.GID = -1, -1
	l := mustNew(t, cfg)
	lk, err := l.LockGroup(groupP)
	if err != nil {
		t.Fatal(err)
	}
	unlock(t, lk)
	checkOwner(t, l.GroupLockPath(groupP), 0o660, os.Geteuid(), os.Getegid())
}

// TestCreateRace: many concurrent first lockers of one path all end up on
// the same single file.
func TestCreateRace(t *testing.T) {
	cfg := setup(t, Run)
	l := mustNew(t, cfg)
	const n = 32
	locks := make([]*Lock, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			locks[i], errs[i] = l.LockSnapshot(snapP, true)
		}()
	}
	wg.Wait()
	want, err := os.Stat(l.SnapshotLockPath(snapP))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("locker %d: %v", i, errs[i])
		}
		fi, err := locks[i].f.Stat()
		if err != nil || !os.SameFile(fi, want) {
			t.Errorf("locker %d holds another file (%v)", i, err)
		}
		unlock(t, locks[i])
	}
	ents, err := os.ReadDir(filepath.Dir(l.SnapshotLockPath(snapP)))
	if err != nil || len(ents) != 1 {
		t.Errorf("lock dir holds %d entries (%v), want 1", len(ents), err)
	}
}

func TestHashedLockFile(t *testing.T) {
	cfg := setup(t, Run)
	l := mustNew(t, cfg)
	p := Path{NS: []string{"a"}, Rel: "ct/" + strings.Repeat("x-", 60) + "/" + tm}
	path := l.SnapshotLockPath(p)
	if !strings.HasPrefix(path, filepath.Join(cfg.Dir, "store1", "a", "hashed")+"/") {
		t.Fatalf("not hashed: %s", path)
	}
	h := hold(t, helperArgs{Cfg: cfg, P: p, Kind: "snap-excl"})
	_, err := l.LockSnapshot(p, true)
	wantWouldBlock(t, err, path)
	h.release(t)
	lk, err := l.LockSnapshot(p, false)
	if err != nil {
		t.Fatal(err)
	}
	unlock(t, lk)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveLockFiles(t *testing.T) {
	forSchemes(t, func(t *testing.T, cfg Config, l *Locker) {
		for _, p := range []Path{snapP, nsSnapP} {
			g := Path{NS: p.NS, Rel: filepath.Dir(p.Rel)}
			for _, f := range []func() (*Lock, error){
				func() (*Lock, error) { return l.LockGroup(g) },
				func() (*Lock, error) { return l.LockSnapshot(p, false) },
				func() (*Lock, error) { return l.LockManifest(context.Background(), p, ManifestTimeout) },
			} {
				lk, err := f()
				if err != nil {
					t.Fatal(err)
				}
				unlock(t, lk)
			}
			manifest := l.ManifestLockPath(p)
			l.RemoveSnapshotLockFiles(p)
			l.RemoveGroupLockFile(g)
			exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
			switch l.Scheme() {
			case Run:
				for _, f := range []string{manifest, l.SnapshotLockPath(p), l.GroupLockPath(g)} {
					if exists(f) {
						t.Errorf("%s still exists", f)
					}
				}
			case Dirs:
				if exists(manifest) || exists(filepath.Dir(manifest)) {
					t.Errorf("%s or its directory still exists", manifest)
				}
				if !exists(filepath.Dir(filepath.Dir(manifest))) {
					t.Errorf("removed too much above %s", manifest)
				}
			case Legacy:
				if !exists(manifest) {
					t.Errorf("legacy must not touch %s (PBS removes it with the snapshot dir)", manifest)
				}
			}
			// The datastore directories are never touched.
			if !exists(filepath.Join(cfg.Base, p.String())) {
				t.Errorf("snapshot directory removed")
			}
		}
	})
}

// TestMissingDirectories: directory locks need the directory; the legacy
// manifest lock must not re-create a removed snapshot directory.
func TestMissingDirectories(t *testing.T) {
	for _, s := range []Scheme{Dirs, Legacy} {
		cfg := setup(t, s)
		l := mustNew(t, cfg)
		gone := Path{Rel: "vm/999/" + tm}
		if _, err := l.LockSnapshot(gone, false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: snapshot lock on missing dir: %v", s, err)
		}
		if _, err := l.LockGroup(Path{Rel: "vm/999"}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: group lock on missing dir: %v", s, err)
		}
		if s == Legacy {
			if _, err := l.LockManifest(context.Background(), gone, shortTimeout); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("legacy manifest lock of missing snapshot: %v", err)
			}
			if _, err := os.Stat(filepath.Join(cfg.Base, "vm/999")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("legacy manifest lock re-created the snapshot directory")
			}
		}
	}
}
