package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
)

// notesReadTargets: a snapshot's notes (in its manifest) and a group's (a
// file of its own) — the two sources a notes node reads from.
var notesReadTargets = []editTarget{
	{name: "snapshot", rel: demo.SampleVM, snap: true},
	{name: "group", rel: "vm/100"},
}

// notesVersion is a notes text of n bytes (n ≥ 8) that no other version of
// a test shares: tag, then filler, then a newline.
func notesVersion(tag string, n int) string {
	head := tag + " "
	return head + strings.Repeat(string(rune('a'+len(tag)%26)), max(n-len(head)-1, 0)) + "\n"
}

// readAllAt reads f to its end from its current offset.
func readAllAt(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	return string(b)
}

// describeRead says how got differs from want, briefly (texts are long).
func describeRead(got, want string) string {
	nul := strings.IndexByte(got, 0)
	return fmt.Sprintf("%d bytes (first NUL at %d, starts %.20q), want %d bytes (starts %.20q)",
		len(got), nul, got, len(want), want)
}

// TestNotesReadOneVersion: a descriptor opened for reading reads the notes
// as they were at its open, whole, whatever changes them before it reads —
// a write session through another descriptor (its pending text, truncated
// or written in place) or a save from outside (the PBS GUI) that the kernel
// has been told of. The kernel bounds a page-cache read by the size it
// holds for the file, which those changes move, so a read through the page
// cache came back cut to the new size or padded with NULs up to it; each
// case here did (checked against the page-cache read path).
func TestNotesReadOneVersion(t *testing.T) {
	t.Parallel()
	m := startMount(t, newStore(t))
	st := openEditStore(m)
	defer st.Close()
	long := notesVersion("long", 6000) // more than a page
	for _, tg := range notesReadTargets {
		p := m.path(tg.rel, "notes")
		cases := []struct {
			name   string
			change func(t *testing.T) (done func())
			next   string // the text a fresh open reads afterwards
		}{
			{"shorter text through O_TRUNC, pending", func(t *testing.T) func() {
				w, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.WriteString(notesVersion("short", 100)); err != nil {
					t.Fatal(err)
				}
				return func() { mustClose(t, w) }
			}, notesVersion("short", 100)},
			{"longer text written in place, pending", func(t *testing.T) func() {
				w, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.WriteAt([]byte(notesVersion("longer", 7000)), 0); err != nil {
					t.Fatal(err)
				}
				return func() { mustClose(t, w) }
			}, notesVersion("longer", 7000)},
			{"shorter text saved in the GUI", func(t *testing.T) func() {
				setNotesOutside(t, st, tg, notesVersion("gui", 50))
				waitNotesSize(t, p, 50)
				return func() {}
			}, notesVersion("gui", 50)},
			{"longer text saved in the GUI", func(t *testing.T) func() {
				setNotesOutside(t, st, tg, notesVersion("guilong", 9000))
				waitNotesSize(t, p, 9000)
				return func() {}
			}, notesVersion("guilong", 9000)},
		}
		for _, c := range cases {
			t.Run(tg.name+"/"+c.name, func(t *testing.T) {
				if err := os.WriteFile(p, []byte(long), 0o644); err != nil {
					t.Fatal(err)
				}
				for range 2 { // warm: the second read may come from the page cache
					if b, err := os.ReadFile(p); err != nil || string(b) != long {
						t.Fatalf("read before the change: %v, %s", err, describeRead(string(b), long))
					}
				}
				r, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				done := c.change(t)
				if got := readAllAt(t, r); got != long {
					t.Errorf("read through a descriptor opened before the change: %s", describeRead(got, long))
				}
				done()
				if b, err := os.ReadFile(p); err != nil || string(b) != c.next {
					t.Errorf("fresh read after the change: %v, %s", err, describeRead(string(b), c.next))
				}
			})
		}
	}
}

// waitNotesSize waits until a stat through the mount shows size: the
// kernel has been told of a change made outside (the revalidator).
func waitNotesSize(t *testing.T, p string, size int64) {
	t.Helper()
	deadline := time.Now().Add(changeVisible())
	for {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: size %d after %v, want %d", p, fi.Size(), changeVisible(), size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notesSaver returns a function saving tg's notes in the store, as the PBS
// GUI would, that a goroutine can call (it returns the error).
func notesSaver(t *testing.T, st *datastore.Store, tg editTarget) func(text string) error {
	if tg.snap {
		sn := snapshotOf(t, tg.rel)
		return func(text string) error { return st.SetNotes(context.Background(), sn, text) }
	}
	typ, id, _ := strings.Cut(tg.rel, "/")
	g := datastore.Group{Type: typ, ID: id}
	return func(text string) error { return st.SetGroupNotes(context.Background(), g, text) }
}

func mustClose(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNotesReadsRacingWrites: readers read the whole notes through fresh
// opens, again and again, while one writer rewrites them through the
// mount with texts of varying lengths (one to three pages) and a PBS-like
// writer saves others into the store underneath. Every read must be one of
// the texts written, whole — or empty, the pending O_TRUNC of a rewrite, as
// on a local disk — never cut short, mixed or padded with NULs.
func TestNotesReadsRacingWrites(t *testing.T) {
	t.Parallel()
	m := startMount(t, newStore(t))
	st := openEditStore(m)
	defer st.Close()
	const rounds = 300 // each writer's; the readers read until both are done
	for _, tg := range notesReadTargets {
		t.Run(tg.name, func(t *testing.T) {
			p := m.path(tg.rel, "notes")
			var mu sync.Mutex
			known := map[string]bool{"": true}
			version := func(tag string, i int) string {
				v := notesVersion(fmt.Sprintf("%s%d", tag, i), 8+(i*2741)%12000)
				mu.Lock()
				known[v] = true
				mu.Unlock()
				return v
			}
			if err := os.WriteFile(p, []byte(version("init", 0)), 0o644); err != nil {
				t.Fatal(err)
			}
			var writers, readers sync.WaitGroup
			var stop atomic.Bool
			var reads, bad atomic.Int64
			var failures []string
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				if len(failures) < 10 {
					failures = append(failures, fmt.Sprintf(format, args...))
				}
			}
			writers.Go(func() {
				for i := range rounds {
					err := os.WriteFile(p, []byte(version("mount", i)), 0o644)
					// EAGAIN: the manifest lock busy for 5 s; EBUSY: the
					// group lock, which group notes saves take without
					// waiting, held by the other writer.
					if !allowed(err, syscall.EAGAIN, syscall.EBUSY) {
						fail("write through the mount: %v", err)
					}
				}
			})
			save := notesSaver(t, st, tg)
			writers.Go(func() {
				for i := range rounds {
					if err := save(version("pbs", i)); err != nil && !errors.Is(err, datastore.ErrLockUnavailable) && !errors.Is(err, datastore.ErrInUse) {
						fail("save in the store: %v", err)
					}
				}
			})
			for range 2 {
				readers.Go(func() {
					for !stop.Load() {
						b, err := os.ReadFile(p)
						if err != nil {
							fail("read: %v", err)
							continue
						}
						reads.Add(1)
						mu.Lock()
						ok := known[string(b)]
						mu.Unlock()
						if !ok {
							bad.Add(1)
							nul := strings.IndexByte(string(b), 0)
							fail("read %d bytes that were never written whole (first NUL at %d): %.30q…%.30q",
								len(b), nul, b, b[max(len(b)-30, 0):])
						}
					}
				})
			}
			writers.Wait()
			stop.Store(true)
			readers.Wait()
			t.Logf("%d reads during %d saves through the mount and %d in the store, %d torn", reads.Load(), rounds, rounds, bad.Load())
			for _, f := range failures {
				t.Error(f)
			}
		})
	}
}
