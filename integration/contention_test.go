package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// envPBSWriter makes the test binary, re-executed, play PBS writing into
// manifests (see pbsWriterMain). It is handled in init, before TestMain.
const envPBSWriter = "PBSFS_IT_PBSWRITER"

func init() {
	if arg := os.Getenv(envPBSWriter); arg != "" {
		os.Exit(pbsWriterMain(arg))
	}
}

// pbsWriterArgs configures the PBS-like writer process.
type pbsWriterArgs struct {
	Scheme  lock.Scheme
	LockDir string
	Store   string // datastore name in lock paths
	Base    string
	NS      []string
	Type    string
	ID      string
	Time    string
	Updates int // per task
	// For, if set, makes each task update until it has run that long
	// (Updates is then ignored).
	For time.Duration
}

// pbsWriterResult is what the writer reports on stdout (one JSON line).
type pbsWriterResult struct {
	Verify, Stats int      // updates done by the verify and backup-finish tasks
	Lost          []string // the first few
	LostCount     int
	NotesSeen     int // highest notes sequence number seen under the lock
	Err           string
}

// lost records a lost update; the first few are kept verbatim.
func (r *pbsWriterResult) lost(what string) {
	r.LostCount++
	if len(r.Lost) < 5 {
		r.Lost = append(r.Lost, what)
	}
}

// notesSeq parses the sequence number of notes written by TestContention
// ("notes 17\n..."), -1 if there is none.
func notesSeq(notes string) int {
	rest, ok := strings.CutPrefix(notes, "notes ")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.SplitN(rest, "\n", 2)[0])
	if err != nil {
		return -1
	}
	return n
}

// pbsWriterMain plays two PBS tasks on one snapshot, each through
// datastore.UpdateManifest (the real manifest lock of the scheme) as PBS's
// update_manifest does: a verify task setting unprotected.verify_state and
// a backup finishing and setting unprotected.chunk_upload_stats, each
// carrying a counter. Under the lock each task checks that its own key
// still holds the value it wrote last (else an update of its was lost)
// and that the notes never go back to an older sequence number.
func pbsWriterMain(arg string) int {
	var a pbsWriterArgs
	res := pbsWriterResult{}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(res) }()
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		res.Err = err.Error()
		return 1
	}
	s, err := datastore.Open(a.Base, datastore.Options{Lock: lock.Config{
		Scheme: a.Scheme, Dir: a.LockDir, Store: a.Store, UID: -1, GID: -1}})
	if err != nil {
		res.Err = err.Error()
		return 1
	}
	defer s.Close()
	sn := datastore.Snapshot{Group: datastore.Group{NS: a.NS, Type: a.Type, ID: a.ID}, Time: a.Time}

	var mu sync.Mutex // guards res
	notesSeen := -1
	deadline := time.Now().Add(a.For)
	more := func(i int) bool {
		if a.For > 0 {
			return time.Now().Before(deadline)
		}
		return i <= a.Updates
	}
	task := func(key string, value func(i int) string, count *int) error {
		last := ""
		for i := 1; more(i); i++ {
			v := value(i)
			err := s.UpdateManifest(context.Background(), sn, func(u *manifest.Unprotected) error {
				cur, _ := u.Get(key)
				mu.Lock()
				defer mu.Unlock()
				if last != "" && string(cur) != last {
					res.lost(fmt.Sprintf("%s: found %s, wrote %s", key, cur, last))
				}
				if seq := notesSeq(u.Notes()); seq < notesSeen {
					res.lost(fmt.Sprintf("notes went back from %d to %d (%.40q)", notesSeen, seq, u.Notes()))
				} else {
					notesSeen = seq
				}
				return u.Set(key, json.RawMessage(v))
			})
			if err != nil {
				return fmt.Errorf("%s update %d: %w", key, i, err)
			}
			last = v
			mu.Lock()
			*count = i
			mu.Unlock()
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = task("verify_state", func(i int) string {
			return fmt.Sprintf(`{"state":"ok","upid":"UPID:pbsfs-test:%08X:0000A1B2:00000001:66600000:verify:test:root@pam:"}`, i)
		}, &res.Verify)
	})
	wg.Go(func() {
		errs[1] = task("chunk_upload_stats", func(i int) string {
			return fmt.Sprintf(`{"compressed_size":%d,"count":%d,"duplicates":0,"size":%d}`, 1000+i, i, 4000+i)
		}, &res.Stats)
	})
	wg.Wait()
	res.NotesSeen = notesSeen
	for _, err := range errs {
		if err != nil {
			res.Err += err.Error() + "; "
		}
	}
	if res.Err != "" || res.LostCount > 0 {
		return 1
	}
	return 0
}

// holdLockScheme is mount.holdLock for any lock scheme and lock directory.
func holdLockScheme(t *testing.T, scheme lock.Scheme, lockDir, store, kind string, ns []string, rel string) *heldLock {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envHelper+"=holdlock",
		envLockCfg+"="+strings.Join([]string{string(scheme), lockDir, storeName, store}, "|"),
		envLockObj+"="+strings.Join([]string{kind, strings.Join(ns, ":"), rel}, "|"),
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &heldLock{cmd: cmd, stdin: stdin}
	t.Cleanup(h.release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock helper (%s %s, %s): %q, %v", scheme, kind, rel, line, err)
	}
	return h
}

// contentionUpdates is how many updates each of the two PBS tasks makes per
// lock scheme.
const contentionUpdates = 300

// TestContention races notes edits through the mount against a second
// process playing PBS (a verify task and a backup finish, writing
// verify_state and chunk_upload_stats through datastore.UpdateManifest with
// the real manifest lock), under each lock scheme. No update may be lost:
// the PBS tasks check their own keys and the notes sequence under the lock
// every time, the mount side checks the manifest on disk after every notes
// write, and the final manifest must hold the last value of every writer.
// Then a backup holding the exclusive snapshot lock (and the group lock)
// and a restore holding the shared snapshot lock each make rmdir of the
// snapshot fail with EBUSY, leaving the store byte-identical.
func TestContention(t *testing.T) {
	t.Parallel()
	total := 0
	for _, scheme := range []lock.Scheme{lock.Run, lock.Dirs, lock.Legacy} {
		t.Run(string(scheme), func(t *testing.T) {
			total += contention(t, scheme)
		})
	}
	t.Logf("%d operations in all, none lost", total)
}

func contention(t *testing.T, scheme lock.Scheme) int {
	store := fastStore(t)
	lockDir := filepath.Join(t.TempDir(), "locks")
	m := startMount(t, store, "--lock-scheme", string(scheme), "--lock-dir", lockDir)
	const snap = "ns/prod/vm/300/2024-05-31T22:00:02Z"
	sn := snapshotOf(t, snap)

	arg, err := json.Marshal(pbsWriterArgs{Scheme: scheme, LockDir: lockDir, Store: storeName, Base: store,
		NS: sn.Group.NS, Type: sn.Group.Type, ID: sn.Group.ID, Time: sn.Time, Updates: contentionUpdates})
	if err != nil {
		t.Fatal(err)
	}
	pbs := exec.Command(os.Args[0], "-test.run=^$")
	pbs.Env = append(os.Environ(), envPBSWriter+"="+string(arg))
	pbs.Stderr = os.Stderr
	out, err := pbs.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pbs.Start(); err != nil {
		t.Fatal(err)
	}
	resCh := make(chan pbsWriterResult, 1)
	pbsDone := make(chan struct{})
	t.Cleanup(func() {
		// A failed test must not leave it writing into the store.
		_ = pbs.Process.Kill()
		<-pbsDone
	})
	go func() {
		var res pbsWriterResult
		b, _ := io.ReadAll(out)
		if err := json.Unmarshal(b, &res); err != nil {
			res.Err = fmt.Sprintf("bad output %q: %v", b, err)
		}
		_ = pbs.Wait()
		close(pbsDone)
		resCh <- res
	}()

	// Notes through the mount until PBS is done: full rewrites (echo >)
	// and appends (echo >>), each followed by a look at the disk.
	notes := m.path(snap, "notes")
	blob := filepath.Join(store, snap, "index.json.blob")
	var res pbsWriterResult
	want := ""
	writes := 0
	lastVerify, lastStats := "", ""
	for done := false; !done; {
		select {
		case res = <-resCh:
			done = true
		default:
		}
		writes++
		var err error
		if writes%3 == 0 {
			want += "appended\n"
			f, e := os.OpenFile(notes, os.O_WRONLY|os.O_APPEND, 0)
			if err = e; err == nil {
				_, err = f.WriteString("appended\n")
				if e := f.Close(); err == nil {
					err = e
				}
			}
		} else {
			want = fmt.Sprintf("notes %d\nwritten through the mount\n", writes)
			err = os.WriteFile(notes, []byte(want), 0o644)
		}
		if err != nil {
			t.Fatalf("notes write %d through the mount: %v", writes, err)
		}
		raw, err := os.ReadFile(blob)
		if err != nil {
			t.Fatal(err)
		}
		mm, err := manifest.Load(raw)
		if err != nil {
			t.Fatalf("after notes write %d: %v", writes, err)
		}
		if mm.Notes() != want {
			t.Fatalf("notes write %d lost: on disk %q, want %q", writes, mm.Notes(), want)
		}
		// PBS's values only ever move forward.
		v, _ := mm.Unprotected().Get("verify_state")
		s, _ := mm.Unprotected().Get("chunk_upload_stats")
		if lastVerify != "" && upidSeq(t, v) < upidSeq(t, json.RawMessage(lastVerify)) {
			t.Fatalf("verify_state went back: %s after %s", v, lastVerify)
		}
		if lastStats != "" && statsSeq(t, s) < statsSeq(t, json.RawMessage(lastStats)) {
			t.Fatalf("chunk_upload_stats went back: %s after %s", s, lastStats)
		}
		lastVerify, lastStats = string(v), string(s)
	}
	if res.Err != "" || res.LostCount > 0 {
		t.Fatalf("PBS writer: err %q; %d lost updates, the first: %q", res.Err, res.LostCount, res.Lost)
	}
	if res.Verify != contentionUpdates || res.Stats != contentionUpdates {
		t.Fatalf("PBS writer did %d+%d updates, want %d each", res.Verify, res.Stats, contentionUpdates)
	}
	mm, _ := loadManifest(t, store, snap)
	if mm.Notes() != want {
		t.Errorf("final notes %q, want %q", mm.Notes(), want)
	}
	v, _ := mm.Unprotected().Get("verify_state")
	s, _ := mm.Unprotected().Get("chunk_upload_stats")
	if upidSeq(t, v) != contentionUpdates || statsSeq(t, s) != contentionUpdates {
		t.Errorf("final verify_state %s, chunk_upload_stats %s; want counter %d in both", v, s, contentionUpdates)
	}
	if got, err := os.ReadFile(notes); err != nil || string(got) != want {
		t.Errorf("notes through the mount %q, %v; want %q", got, err, want)
	}
	ops := res.Verify + res.Stats + writes
	t.Logf("%s: %d PBS updates (%d verify_state, %d chunk_upload_stats) and %d notes writes through the mount, none lost",
		scheme, res.Verify+res.Stats, res.Verify, res.Stats, writes)

	// rmdir while a backup (exclusive snapshot lock + group lock) or a
	// restore (shared snapshot lock) holds the snapshot: EBUSY, nothing
	// changed.
	rel := sn.Group.Type + "/" + sn.Group.ID + "/" + sn.Time
	grel := sn.Group.Type + "/" + sn.Group.ID
	for _, c := range []struct {
		what  string
		locks [][2]string // kind, rel
	}{
		{"backup", [][2]string{{"group", grel}, {"snapshot", rel}}},
		{"restore", [][2]string{{"shared-snapshot", rel}}},
	} {
		var held []*heldLock
		for _, l := range c.locks {
			held = append(held, holdLockScheme(t, scheme, lockDir, store, l[0], sn.Group.NS, l[1]))
		}
		before := treeDigest(t, store)
		err := os.Remove(m.path(snap))
		wantErrno(t, string(scheme)+": rmdir during a "+c.what, err, syscall.EBUSY)
		diffDigests(t, before, treeDigest(t, store))
		if got, err := os.ReadFile(m.path(snap, "notes")); err != nil || string(got) != want {
			t.Errorf("%s: notes after the refused rmdir: %q, %v", c.what, got, err)
		}
		for _, h := range held {
			h.release()
		}
	}
	// Free again: it goes.
	if err := os.Remove(m.path(snap)); err != nil {
		t.Errorf("%s: rmdir after the locks were released: %v", scheme, err)
	}
	if exists(filepath.Join(store, snap)) {
		t.Errorf("%s: snapshot still on disk", scheme)
	}
	m.stop()
	return ops
}

// upidSeq extracts the counter pbsWriterMain puts into verify_state's UPID
// (0 for a value it did not write).
func upidSeq(t *testing.T, v json.RawMessage) int {
	t.Helper()
	var vs struct{ UPID string }
	if v == nil {
		return 0
	}
	if err := json.Unmarshal(v, &vs); err != nil {
		t.Fatalf("verify_state %s: %v", v, err)
	}
	parts := strings.Split(vs.UPID, ":")
	if len(parts) < 3 || parts[0] != "UPID" || parts[1] != "pbsfs-test" {
		return 0
	}
	n, err := strconv.ParseUint(parts[2], 16, 32)
	if err != nil {
		t.Fatalf("verify_state %s: %v", v, err)
	}
	return int(n)
}

// statsSeq extracts the counter pbsWriterMain puts into chunk_upload_stats
// (0 for a value it did not write).
func statsSeq(t *testing.T, v json.RawMessage) int {
	t.Helper()
	var st struct {
		CompressedSize int `json:"compressed_size"`
		Count, Size    int
	}
	if v == nil {
		return 0
	}
	if err := json.Unmarshal(v, &st); err != nil {
		t.Fatalf("chunk_upload_stats %s: %v", v, err)
	}
	if st.CompressedSize != 1000+st.Count || st.Size != 4000+st.Count {
		return 0
	}
	return st.Count
}
