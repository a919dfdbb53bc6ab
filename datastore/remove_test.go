package datastore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"pbsfs/lock"
)

func TestRemoveSnapshot(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			a := snap(NS{"x"}, "vm", "100", "2024-06-01T00:00:00Z")
			b := snap(NS{"x"}, "vm", "100", "2024-06-02T00:00:00Z")
			addSnapshot(t, s, a, "")
			addSnapshot(t, s, b, "")
			must(t, s.SetGroupNotes(context.Background(), a.Group, "group notes"))
			must(t, s.SetNotes(context.Background(), a, "touch the manifest lock"))

			// Protected: refused, intact.
			prot := filepath.Join(s.Path(), a.Dir(), ProtectedName)
			must(t, os.WriteFile(prot, nil, 0o644))
			if err := s.RemoveSnapshot(context.Background(), a); !errors.Is(err, ErrProtected) {
				t.Fatalf("protected: %v, want ErrProtected", err)
			}
			if _, err := os.Stat(filepath.Join(s.Path(), a.Dir(), ManifestName)); err != nil {
				t.Fatal("protected snapshot damaged")
			}
			must(t, os.Remove(prot))

			must(t, s.RemoveSnapshot(context.Background(), a))
			if _, err := os.Stat(filepath.Join(s.Path(), a.Dir())); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("snapshot directory still there")
			}
			lp := a.lockPath()
			for _, p := range []string{s.locker.SnapshotLockPath(lp), s.locker.ManifestLockPath(lp)} {
				if scheme == lock.Legacy && p == s.locker.SnapshotLockPath(lp) {
					continue // a directory lock: no file
				}
				if _, err := os.Lstat(p); err == nil && p != filepath.Join(s.Path(), a.Dir()) {
					t.Errorf("lock file left: %s", p)
				}
			}
			if err := s.RemoveSnapshot(context.Background(), a); !errors.Is(err, ErrNotFound) {
				t.Errorf("second remove: %v", err)
			}
			// Last snapshot: the run scheme removes the emptied group (PBS
			// 3.3.5+); directory-lock schemes keep it.
			must(t, s.RemoveSnapshot(context.Background(), b))
			_, err := os.Stat(filepath.Join(s.Path(), b.Group.Dir()))
			if scheme == lock.Run {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("run scheme: emptied group kept (%v)", err)
				}
			} else {
				if err != nil {
					t.Errorf("%s scheme: emptied group removed", scheme)
				}
				must(t, s.RemoveGroup(b.Group))
				if _, err := os.Stat(filepath.Join(s.Path(), b.Group.Dir())); !errors.Is(err, os.ErrNotExist) {
					t.Error("RemoveGroup left the group")
				}
			}
		})
	}
}

func TestRemoveGroupRefusesNonEmpty(t *testing.T) {
	s := newStore(t, lock.Run)
	sn := snap(nil, "vm", "100", testTime)
	addSnapshot(t, s, sn, "")
	if err := s.RemoveGroup(sn.Group); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("group with a snapshot: %v", err)
	}
	must(t, os.RemoveAll(filepath.Join(s.Path(), sn.Dir())))
	must(t, os.WriteFile(filepath.Join(s.Path(), sn.Group.Dir(), "stray"), nil, 0o644))
	if err := s.RemoveGroup(sn.Group); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("group with a stray file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Path(), sn.Group.Dir(), OwnerName)); err != nil {
		t.Error("owner removed although the group stays")
	}
}

// TestLocksHeldByAnotherProcess: a second process holds each PBS lock as a
// backup, restore/verify or update_manifest would; the store reacts as PBS.
func TestLocksHeldByAnotherProcess(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(NS{"a", "b"}, "host", "my-host.example", testTime)
			addSnapshot(t, s, sn, "before")

			for _, kind := range []string{"snapshot-shared", "snapshot-excl"} {
				release := holdLock(t, s, sn, kind)
				err := s.RemoveSnapshot(context.Background(), sn)
				if !errors.Is(err, ErrInUse) {
					t.Errorf("%s held: remove = %v, want ErrInUse", kind, err)
				}
				// Notes take only the manifest lock, like PBS.
				must(t, s.SetNotes(context.Background(), sn, "during "+kind))
				release()
			}
			if _, err := os.Stat(filepath.Join(s.Path(), sn.Dir(), ManifestName)); err != nil {
				t.Fatal("snapshot damaged by a refused remove")
			}

			release := holdLock(t, s, sn, "manifest")
			// rmdir (PBS's forget) needs the manifest lock too, not only
			// the snapshot lock: tried alongside the notes update, so both
			// waits overlap.
			removed := make(chan error, 1)
			go func() { removed <- s.RemoveSnapshot(context.Background(), sn) }()
			start := time.Now()
			err := s.SetNotes(context.Background(), sn, "never")
			if !errors.Is(err, ErrLockUnavailable) {
				t.Errorf("manifest lock held: %v, want ErrLockUnavailable", err)
			}
			t.Logf("notes update gave up after %v", time.Since(start).Round(time.Millisecond))
			if err := <-removed; !errors.Is(err, ErrLockUnavailable) {
				t.Errorf("manifest lock held: remove = %v, want ErrLockUnavailable", err)
			}
			if _, err := os.Stat(filepath.Join(s.Path(), sn.Dir(), ManifestName)); err != nil {
				t.Fatalf("snapshot removed while another process held its manifest lock: %v", err)
			}
			if got := loadRaw(t, s, sn).Notes(); got != "during snapshot-excl" {
				t.Errorf("notes changed while the manifest lock was held: %q", got)
			}
			// An interrupted wait (the FUSE request's context) ends it at
			// once: ErrInterrupted, not ErrLockUnavailable, nothing changed.
			for what, op := range map[string]func(context.Context) error{
				"notes":  func(ctx context.Context) error { return s.SetNotes(ctx, sn, "never") },
				"remove": func(ctx context.Context) error { return s.RemoveSnapshot(ctx, sn) },
			} {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(20*time.Millisecond, cancel)
				if err := op(ctx); !errors.Is(err, ErrInterrupted) || errors.Is(err, ErrLockUnavailable) {
					t.Errorf("%s: wait for the manifest lock interrupted: %v, want ErrInterrupted", what, err)
				}
			}
			if got := loadRaw(t, s, sn).Notes(); got != "during snapshot-excl" {
				t.Errorf("notes changed by interrupted updates: %q", got)
			}
			release()

			if scheme == lock.Run {
				release := holdLock(t, s, sn, "group")
				if err := s.SetGroupNotes(context.Background(), sn.Group, "x"); !errors.Is(err, ErrInUse) {
					t.Errorf("group lock held: group notes = %v, want ErrInUse", err)
				}
				release()
			}
			must(t, s.RemoveSnapshot(context.Background(), sn))
		})
	}
}

// TestNoLostUpdates: several OS processes hammer one manifest, each with its
// own unprotected key and interleaved notes; every last value must survive.
func TestNoLostUpdates(t *testing.T) {
	const procs, count = 4, 200
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(nil, "vm", "100", testTime)
			addSnapshot(t, s, sn, "start")
			var wg sync.WaitGroup
			errs := make(chan error, procs+1)
			for p := 0; p < procs; p++ {
				h := startHelper(t, "update", helperArgs{Base: s.Path(), Scheme: scheme, LockDir: s.lockDir,
					Snapshot: sn, Key: fmt.Sprintf("worker-%d", p), Count: count})
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := h.Release(); err != nil { // waits for it to finish (its stderr is the test's)
						errs <- fmt.Errorf("update helper %d: %v", p, err)
					}
				}()
			}
			// This process sets notes in between, through the same API.
			for i := 0; i < 50; i++ {
				if err := s.SetNotes(context.Background(), sn, "main "+strconv.Itoa(i)); err != nil {
					errs <- err
					break
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			m := loadRaw(t, s, sn)
			for p := 0; p < procs; p++ {
				v, ok := m.Unprotected().Get(fmt.Sprintf("worker-%d", p))
				if !ok || string(v) != strconv.Itoa(count) {
					t.Errorf("worker-%d = %s (present %v), want %d", p, v, ok, count)
				}
			}
			if _, ok := m.Unprotected().Get("chunk_upload_stats"); !ok {
				t.Error("original unprotected key lost")
			}
			assertNoTemps(t, filepath.Join(s.Path(), sn.Dir()))
		})
	}
}

// TestRemoveSnapshotGoneMeanwhile: a snapshot another process forgets while
// our rmdir waits for its manifest lock is reported as not found, not as
// removed by us.
func TestRemoveSnapshotGoneMeanwhile(t *testing.T) {
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			s := newStore(t, scheme)
			sn := snap(nil, "vm", "100", testTime)
			addSnapshot(t, s, sn, "x")
			release := holdLock(t, s, sn, "manifest")
			removed := make(chan error, 1)
			start := func() { go func() { removed <- s.RemoveSnapshot(context.Background(), sn) }() }
			start()
			// Wait until the remove holds the snapshot lock (so it is past
			// its first look and waits for the manifest lock). A remove
			// that tried its lock just while the probe held it gets
			// ErrInUse and is started again.
			for waiting := true; waiting; {
				select {
				case err := <-removed:
					if !errors.Is(err, ErrInUse) {
						t.Fatalf("remove ended before it could wait for the manifest lock: %v", err)
					}
					start()
				default:
					probe, err := s.locker.LockSnapshot(sn.lockPath(), false)
					if err != nil {
						waiting = false
						break
					}
					probe.Unlock()
					time.Sleep(time.Millisecond)
				}
			}
			// The other process forgets it, then lets go of its lock.
			must(t, os.RemoveAll(filepath.Join(s.Path(), sn.Dir())))
			release()
			if err := <-removed; !errors.Is(err, ErrNotFound) {
				t.Errorf("remove of a snapshot gone meanwhile = %v, want ErrNotFound", err)
			}
			// Gone between the last look and the removal: not a success
			// either.
			if err := s.removeAllRel(sn.Dir()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removeAllRel of a missing directory = %v, want ENOENT", err)
			}
		})
	}
}
