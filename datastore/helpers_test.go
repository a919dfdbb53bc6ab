package datastore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// The test binary doubles as a second process ("PBS") for lock tests: with
// PBSFS_DS_HELPER set, TestMain runs the helper instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PBSFS_DS_HELPER"); mode != "" {
		if err := runHelper(mode, os.Args[len(os.Args)-1]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	code := m.Run()
	s3srv.Close() // s3backend_test.go
	os.Exit(code)
}

// helperArgs is what a helper process needs to open the same store.
type helperArgs struct {
	Base     string
	Scheme   lock.Scheme
	LockDir  string
	Snapshot Snapshot
	Kind     string // hold: snapshot-shared, snapshot-excl, manifest, group, file (a plain flock of Raw)
	Raw      string // hold/file: the file to flock, as a writer flocks its temp file
	Key      string // update: unprotected key
	Count    int
}

func runHelper(mode, arg string) error {
	var a helperArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return err
	}
	switch mode {
	case "hold":
		if a.Kind == "file" {
			f, err := os.Open(a.Raw)
			if err != nil {
				return err
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				return err
			}
			fmt.Println("ready")
			_, _ = io.Copy(io.Discard, os.Stdin)
			return f.Close()
		}
		locker, err := lock.New(lock.Config{Scheme: a.Scheme, Dir: a.LockDir, Store: "test", Base: a.Base, UID: -1, GID: -1})
		if err != nil {
			return err
		}
		lp := a.Snapshot.lockPath()
		var l *lock.Lock
		switch a.Kind {
		case "snapshot-shared":
			l, err = locker.LockSnapshot(lp, true)
		case "snapshot-excl":
			l, err = locker.LockSnapshot(lp, false)
		case "manifest":
			l, err = locker.LockManifest(context.Background(), lp, time.Second)
		case "group":
			l, err = locker.LockGroup(a.Snapshot.Group.lockPath())
		default:
			return fmt.Errorf("unknown lock kind %q", a.Kind)
		}
		if err != nil {
			return err
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // hold until the test closes stdin
		return l.Unlock()
	case "update":
		s, err := Open(a.Base, Options{Lock: lock.Config{Scheme: a.Scheme, Dir: a.LockDir, Store: "test", UID: -1, GID: -1}})
		if err != nil {
			return err
		}
		for i := 1; i <= a.Count; i++ {
			v := json.RawMessage(strconv.Itoa(i))
			if err := s.UpdateManifest(context.Background(), a.Snapshot, func(u *manifest.Unprotected) error { return u.Set(a.Key, v) }); err != nil {
				return fmt.Errorf("update %d: %w", i, err)
			}
			if i%10 == 0 {
				if err := s.SetNotes(context.Background(), a.Snapshot, fmt.Sprintf("notes by %s at %d", a.Key, i)); err != nil {
					return fmt.Errorf("notes %d: %w", i, err)
				}
			}
		}
		return nil
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// startHelper runs the test binary as a helper in the given mode.
func startHelper(t testing.TB, mode string, a helperArgs) *testsupport.Proc {
	t.Helper()
	arg, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return testsupport.StartHelper(t, []string{"PBSFS_DS_HELPER=" + mode}, string(arg))
}

// holdLock starts a second process that takes the given PBS lock and keeps it
// until the test ends (or release is called).
func holdLock(t *testing.T, s *Store, sn Snapshot, kind string) (release func()) {
	t.Helper()
	return startHolder(t, helperArgs{Base: s.Path(), Scheme: s.locker.Scheme(), LockDir: s.lockDir, Snapshot: sn, Kind: kind})
}

// holdFlock starts a second process that flocks the file at p, as a live
// writer (of this or another pbsfs) holds its temp file.
func holdFlock(t *testing.T, p string) (release func()) {
	t.Helper()
	return startHolder(t, helperArgs{Kind: "file", Raw: p})
}

func startHolder(t *testing.T, a helperArgs) (release func()) {
	t.Helper()
	p := startHelper(t, "hold", a)
	if line := p.Line(t); line != "ready" {
		t.Fatalf("lock helper (%s) did not get its lock: %q", a.Kind, line)
	}
	release = func() {
		if err := p.Release(); err != nil {
			t.Errorf("lock helper: %v", err)
		}
	}
	t.Cleanup(release)
	return release
}

var schemes = []lock.Scheme{lock.Run, lock.Dirs, lock.Legacy}

// newStore makes an empty datastore and opens it with the given scheme and a
// private lock directory.
func newStore(t testing.TB, scheme lock.Scheme) *Store {
	t.Helper()
	base := filepath.Join(t.TempDir(), "store")
	if err := Create(base, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lockDir := t.TempDir()
	s, err := Open(base, Options{Lock: lock.Config{Scheme: scheme, Dir: lockDir, Store: "test", UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const testTime = "2024-06-05T14:22:01Z"

// addSnapshot writes a finished snapshot with a realistic file list and the
// given notes; the group is created when missing.
func addSnapshot(t testing.TB, s *Store, sn Snapshot, notes string) *manifest.Manifest {
	t.Helper()
	if _, err := s.StatGroup(sn.Group); err != nil {
		if err := s.CreateGroup(sn.Group, "root@pam"); err != nil {
			t.Fatal(err)
		}
	}
	bt, err := time.Parse(time.RFC3339, sn.Time)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := manifest.EncodeBlob([]byte("cores: 2\nmemory: 2048\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	files := []manifest.FileInfo{
		{Filename: "qemu-server.conf.blob", CryptMode: "none", Size: uint64(len(conf)), Csum: strings.Repeat("ab", 32)},
		{Filename: "drive-scsi0.img.fidx", CryptMode: "none", Size: 34359738368, Csum: strings.Repeat("cd", 32)},
	}
	m, err := manifest.New(sn.Group.Type, sn.Group.ID, bt.Unix(), files)
	if err != nil {
		t.Fatal(err)
	}
	if notes != "" {
		if err := m.Unprotected().SetNotes(notes); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Unprotected().Set("chunk_upload_stats", json.RawMessage(`{"compressed_size":1,"count":2,"duplicates":0,"size":3}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSnapshot(sn, m, map[string][]byte{"qemu-server.conf.blob": conf}); err != nil {
		t.Fatal(err)
	}
	return m
}

func snap(ns NS, typ, id, tm string) Snapshot {
	return Snapshot{Group: Group{NS: ns, Type: typ, ID: id}, Time: tm}
}

// loadRaw decodes a snapshot's manifest straight from disk, bypassing the
// store and its cache.
func loadRaw(t testing.TB, s *Store, sn Snapshot) *manifest.Manifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.Path(), sn.Dir(), ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (s *Store) lockConfigForTest() lock.Config {
	return lock.Config{Scheme: s.locker.Scheme(), Dir: s.lockDir, Store: "test", UID: -1, GID: -1}
}

func statT(t testing.TB, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
