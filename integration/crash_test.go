package integration

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/manifest"
)

// crashKills is how many times TestCrashSafety kills pbsfs.
const crashKills = 50

// kill ends pbsfs with SIGKILL, as the OOM killer or a power cut would, and
// cleans up the dead mount with fusermount3 -u -z.
func (m *mount) kill() {
	m.t.Helper()
	m.stopped = true
	if err := m.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.t.Fatalf("SIGKILL: %v", err)
	}
	m.waitExit(exitTimeout)
	if out, err := exec.Command("fusermount3", "-u", "-z", m.dir).CombinedOutput(); err != nil {
		m.t.Fatalf("fusermount3 -u -z %s after SIGKILL: %v: %s", m.dir, err, out)
	}
	if isMounted(m.dir) {
		m.t.Fatalf("%s still mounted after fusermount3 -u -z", m.dir)
	}
	m.checkStderr()
}

// tempFiles lists pbsfs's temp files in a store directory.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), datastore.TempPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitNoTemps waits until the store directories hold no temp files (the
// cleanup at mount runs in the background), failing after mountTimeout.
func waitNoTemps(t *testing.T, m *mount, store string, dirs ...string) {
	t.Helper()
	deadline := time.Now().Add(mountTimeout)
	for {
		var left []string
		for _, d := range dirs {
			left = append(left, tempFiles(t, filepath.Join(store, d))...)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("temp files still there %v after the mount: %q\n%s", mountTimeout, left, m.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notesWriter rewrites one notes file through the mount as fast as it can,
// remembering the last text whose write succeeded (acked) and the one being
// written when the mount died (inflight).
type notesWriter struct {
	path, tag string
	mu        sync.Mutex
	acked     string
	inflight  string
	writes    int
}

func (w *notesWriter) run(round int, pad string, stop <-chan struct{}) {
	for j := 0; ; j++ {
		select {
		case <-stop:
			return
		default:
		}
		text := fmt.Sprintf("%s round %d write %d\n%s", w.tag, round, j, pad[:(round*31+j*17)%len(pad)])
		w.mu.Lock()
		w.inflight = text
		w.mu.Unlock()
		err := os.WriteFile(w.path, []byte(text), 0o644)
		w.mu.Lock()
		if err != nil {
			w.mu.Unlock()
			return // the mount is gone
		}
		w.acked, w.inflight = text, ""
		w.writes++
		w.mu.Unlock()
	}
}

// check fails unless got is the last acknowledged text or the one in flight.
func (w *notesWriter) check(t *testing.T, round int, got string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if got != w.acked && (w.inflight == "" || got != w.inflight) {
		t.Errorf("round %d: %s after SIGKILL = %.60q; want the last acknowledged %.60q or the one in flight %.60q",
			round, w.tag, got, w.acked, w.inflight)
	}
}

// TestCrashSafety kills pbsfs with SIGKILL at random moments while two
// writers rewrite a snapshot's notes and a group's notes through the mount,
// crashKills times, remounting each time. After every kill the manifest
// must decode with a valid CRC, its signed part and other unprotected keys
// must be unchanged, and each notes text must be either the last one whose
// write succeeded or the one being written — never a mix, never empty.
// Temp files a kill leaves in the snapshot or the group directory must be
// gone once the next mount is up (datastore.CleanupTemps, run by pbsfs in
// the background at mount), and none may be left at the end.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	store := newStore(t) // on disk: fsync widens the windows a kill can hit
	lockDir := filepath.Join(t.TempDir(), "locks")
	snap := "vm/100/2024-06-01T02:00:04Z"
	group := "vm/100"
	blob := filepath.Join(store, snap, "index.json.blob")
	groupNotes := filepath.Join(store, group, "notes")
	m0, _ := loadManifest(t, store, snap)
	signed := captureSigned(t, m0)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	t.Logf("seed %d", seed)
	pad := strings.Repeat("Notizen über das Backup ✓ — ", 200) // multi-byte, up to ~6 KiB

	snapW := &notesWriter{tag: "snapshot notes", acked: m0.Notes()}
	groupW := &notesWriter{tag: "group notes"}
	if b, err := os.ReadFile(groupNotes); err == nil {
		groupW.acked = string(b)
	}
	var writes, leftoverRounds int
	leftovers := map[string]bool{} // distinct temp files seen right after a kill
	for round := 1; round <= crashKills; round++ {
		m := startMount(t, store, "--lock-dir", lockDir)
		// Temp files the previous kill left are removed by the cleanup
		// at mount (in the background: poll for it).
		waitNoTemps(t, m, store, snap, group)
		snapW.path, groupW.path = m.path(snap, "notes"), m.path(group, "notes")
		snapW.inflight, groupW.inflight = "", ""
		snapW.writes, groupW.writes = 0, 0
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { snapW.run(round, pad, stop) })
		wg.Go(func() { groupW.run(round, pad, stop) })
		time.Sleep(time.Duration(rng.IntN(100_000)) * time.Microsecond)
		m.kill()
		close(stop)
		wg.Wait()
		writes += snapW.writes + groupW.writes

		raw, err := os.ReadFile(blob)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		mm, err := manifest.Load(raw)
		if err != nil {
			t.Fatalf("round %d: manifest does not decode after SIGKILL: %v", round, err)
		}
		signed.check(t, fmt.Sprintf("round %d", round), mm)
		snapW.check(t, round, mm.Notes())
		gb, err := os.ReadFile(groupNotes)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		groupW.check(t, round, string(gb))
		// What the next round's writers build on.
		snapW.acked, groupW.acked = mm.Notes(), string(gb)

		ts, tg := tempFiles(t, filepath.Join(store, snap)), tempFiles(t, filepath.Join(store, group))
		fresh := 0
		for _, f := range append(ts, tg...) {
			if !leftovers[f] {
				leftovers[f] = true
				fresh++
			}
		}
		if fresh > 0 {
			leftoverRounds++
		}
		if t.Failed() {
			t.Fatalf("stopping after round %d", round)
		}
	}

	// A last, clean mount.
	m := startMount(t, store, "--lock-dir", lockDir)
	waitNoTemps(t, m, store, snap, group)
	// The mount shows what is on disk, and still works.
	for _, rel := range []string{snap + "/notes", snap + "/manifest.json", group + "/notes"} {
		got, err := os.ReadFile(m.path(rel))
		if err != nil || !bytes.Equal(got, expectedContent(t, store, rel)) {
			t.Errorf("read %s after the crashes: %.60q, %v", rel, got, err)
		}
	}
	mustSh(t, m.path(snap), "echo after the crashes > notes")
	if mm, _ := loadManifest(t, store, snap); mm.Notes() != "after the crashes\n" {
		t.Errorf("notes after the crashes: %q", mm.Notes())
	}
	mustSh(t, m.path(group), "echo after the crashes > notes")
	m.stop()
	for _, d := range []string{snap, group} {
		if ts := tempFiles(t, filepath.Join(store, d)); len(ts) > 0 {
			t.Errorf("temp files left in %s: %q", d, ts)
		}
	}
	t.Logf("%d kills, %d acknowledged notes writes; %d kills left %d temp files behind, each removed by the next mount",
		crashKills, writes, leftoverRounds, len(leftovers))
}
