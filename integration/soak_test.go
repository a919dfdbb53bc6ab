package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// envSoak sets how long TestSoak's load runs (a Go duration, e.g. "1h"),
// instead of soakDefault, the bounded form CI runs.
const envSoak = "PBSFS_SOAK"

const (
	soakDefault = 50 * time.Second
	soakClients = 32
)

// soakNotes are the snapshots whose notes the clients read and save; PBS-like
// writers (pbsWriterMain, separate processes, the real manifest lock)
// update the manifests of the first three all the time.
var soakNotes = []string{
	"ns/prod/vm/300/2024-05-31T22:00:02Z",
	demo.SampleVM,
	"ct/200/2024-06-01T01:30:00Z",
	"ns/prod/ct/310/2024-06-01T21:00:00Z",
}

const soakPBSWriters = 3

// soakGenGroup is where the generator adds and prunes snapshots, and the
// clients rmdir them.
var soakGenGroup = datastore.Group{Type: "host", ID: "soak-gen"}

// soakOp is one client operation and how it ended.
type soakOp struct {
	kind       string // save, append (notes writes)
	snap       string
	line       string // the line the write adds
	start, end time.Time
	errno      syscall.Errno // 0: accepted
}

// soakState is what the clients share: every notes line ever attempted,
// per snapshot (reads may show a writer's pending text), and the failures.
type soakState struct {
	mu        sync.Mutex
	attempted map[string]map[string]bool
	failures  []string
	counts    map[string]int // op kind + outcome
	// writing: per snapshot, one notes writer of the mount at a time.
	// Reads overlap them freely: each must see one whole text.
	writing map[string]*sync.Mutex
}

func (s *soakState) attempt(snap, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempted[snap][line] = true
}

func (s *soakState) known(snap, line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempted[snap][line]
}

func (s *soakState) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) < 50 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

func (s *soakState) count(kind string, err error) {
	what := kind + " ok"
	if err != nil {
		what = kind + " " + errnoName(errnoOf(err))
	}
	s.mu.Lock()
	s.counts[what]++
	s.mu.Unlock()
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.ESTALE:
		return "ESTALE"
	case syscall.EAGAIN:
		return "EAGAIN"
	case syscall.EBUSY:
		return "EBUSY"
	case syscall.EPERM:
		return "EPERM"
	}
	return fmt.Sprintf("errno %d (%v)", int(e), e)
}

// allowed reports whether err is nil or one of the errnos.
func allowed(err error, errnos ...syscall.Errno) bool {
	return err == nil || slices.Contains(errnos, errnoOf(err))
}

// TestSoak puts a mount under mixed load for soakDefault (or $PBSFS_SOAK):
// 32 clients doing ls, stat, notes reads, whole and appending notes saves,
// manifest.json reads, archive reads and rmdir of snapshots, while three
// PBS-like processes update the same manifests under the real lock
// protocol and a generator adds and prunes snapshots. It then checks:
//   - no lost or torn update: PBS's writers found their own last values
//     every time under the lock; every notes text read is made of lines
//     that were written; the notes on disk are the last accepted whole save
//     with exactly the accepted appends after it, nothing refused;
//   - every ESTALE and EAGAIN matches a real conflict (an append's base
//     changed by another accepted save; a manifest that changes), and no
//     other errno comes where none is expected;
//   - pbsfs's open descriptors (/proc/PID/fd) and goroutines (its SIGUSR1
//     status line) are back where they were before the load, and its RSS
//     is flat after the first minute (the first third of shorter runs;
//     see the limits below).
func TestSoak(t *testing.T) {
	run := soakDefault
	if v := os.Getenv(envSoak); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: not a positive duration", envSoak, v)
		}
		run = d
	}
	store := fastStore(t)
	m := startMount(t, store, "--chunk-cache", "8")
	pid := m.cmd.Process.Pid
	st := &soakState{attempted: map[string]map[string]bool{}, counts: map[string]int{}, writing: map[string]*sync.Mutex{}}
	for _, s := range soakNotes {
		st.attempted[s] = map[string]bool{"soak init": true}
		st.writing[s] = &sync.Mutex{}
		if err := os.WriteFile(m.path(s, "notes"), []byte("soak init\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archives := map[string][]byte{}
	for _, a := range []string{"qemu-server.conf", "client.log"} {
		rel := demo.SampleVM + "/" + a
		archives[rel] = expectedContent(t, store, rel)
	}
	image := m.path(demo.SampleVM, "drive-scsi0.img")

	// The generator: PBS's backups and prunes, through the datastore
	// package with the mount's lock configuration.
	gen, err := datastore.Open(store, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: m.lockDir, Store: storeName, UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	genTime := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	generate := func() error {
		if _, err := gen.StatGroup(soakGenGroup); errors.Is(err, datastore.ErrNotFound) {
			if err := gen.CreateGroup(soakGenGroup, "root@pam"); err != nil && !errors.Is(err, datastore.ErrInUse) {
				return err
			}
		}
		genTime = genTime.Add(time.Minute)
		tm := genTime.Format("2006-01-02T15:04:05Z")
		sn := datastore.Snapshot{Group: soakGenGroup, Time: tm}
		gl, err := gen.Locker().LockGroup(lock.Path{Rel: "host/soak-gen"})
		if err != nil {
			return nil // an rmdir removing the group holds it: next time
		}
		defer gl.Unlock()
		sl, err := gen.Locker().LockSnapshot(lock.Path{Rel: "host/soak-gen/" + tm}, false)
		if err != nil {
			return err
		}
		defer sl.Unlock()
		mf, err := manifest.New("host", "soak-gen", genTime.Unix(), nil)
		if err != nil {
			return err
		}
		if err := mf.Unprotected().SetNotes("generated " + tm); err != nil {
			return err
		}
		if err := gen.WriteSnapshot(sn, mf, nil); err != nil && !errors.Is(err, datastore.ErrNotFound) {
			return err
		}
		return nil
	}
	prune := func() error {
		snaps, err := gen.ListSnapshots(soakGenGroup)
		if err != nil || len(snaps) <= 12 {
			return nil
		}
		err = gen.RemoveSnapshot(t.Context(), datastore.Snapshot{Group: soakGenGroup, Time: snaps[0]})
		if err != nil && !errors.Is(err, datastore.ErrNotFound) && !errors.Is(err, datastore.ErrInUse) {
			return err
		}
		return nil
	}
	for range 8 {
		if err := generate(); err != nil {
			t.Fatal(err)
		}
	}

	// Warm-up, one client's worth of every operation, then the baseline.
	rng := rand.New(rand.NewPCG(1, 2))
	var warm []soakOp
	for i := range 200 {
		if op, ok := soakStep(m, st, rng, -1, i, archives, image); ok {
			warm = append(warm, op)
		}
	}
	if len(st.failures) > 0 {
		t.Fatalf("warm-up: %q", st.failures)
	}
	time.Sleep(scaled(time.Second))
	baseFDs, baseG := pbsfsFDs(t, pid), pbsfsStatus(t, m)
	baseRSS := pbsfsRSS(t, pid)

	// The load.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pbs := make([]*exec.Cmd, 0, soakPBSWriters)
	pbsOut := make([]*bytes.Buffer, soakPBSWriters)
	for i, s := range soakNotes[:soakPBSWriters] {
		sn := snapshotOf(t, s)
		arg, err := json.Marshal(pbsWriterArgs{Scheme: lock.Run, LockDir: m.lockDir, Store: storeName, Base: store,
			NS: sn.Group.NS, Type: sn.Group.Type, ID: sn.Group.ID, Time: sn.Time, For: run})
		if err != nil {
			t.Fatal(err)
		}
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), envPBSWriter+"="+string(arg))
		pbsOut[i] = &bytes.Buffer{}
		c.Stdout, c.Stderr = pbsOut[i], os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		pbs = append(pbs, c)
	}
	t.Cleanup(func() {
		for _, c := range pbs {
			if c.ProcessState == nil {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		}
	})
	ops := make([][]soakOp, soakClients)
	for c := range soakClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if op, ok := soakStep(m, st, rng, c, i, archives, image); ok {
					ops[c] = append(ops[c], op)
				}
			}
		})
	}
	// The PBS GUI: whole notes saves through PBS's set_notes (the
	// datastore package, the real manifest lock), at any time.
	gui := make([]soakOp, 0, 1024)
	snapOf := map[string]datastore.Snapshot{}
	for _, s := range soakNotes {
		snapOf[s] = snapshotOf(t, s)
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(99, 7))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.IntN(400)) * time.Millisecond):
			}
			snap := soakNotes[rng.IntN(len(soakNotes))]
			line := fmt.Sprintf("soak c%d w%d", 1000, i)
			st.attempt(snap, line)
			op := soakOp{kind: "gui", snap: snap, line: line, start: time.Now()}
			err := gen.SetNotes(t.Context(), snapOf[snap], line+"\n")
			op.end = time.Now()
			st.count("gui", err)
			if err != nil {
				op.errno = syscall.EIO
				if errors.Is(err, datastore.ErrLockUnavailable) {
					op.errno = syscall.EAGAIN
				} else {
					st.fail("GUI notes save %s: %v", snap, err)
				}
			}
			gui = append(gui, op)
		}
	})
	genErr := make(chan error, 1)
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				genErr <- nil
				return
			case <-tick.C:
			}
			if err := generate(); err != nil {
				genErr <- fmt.Errorf("generate: %w", err)
				return
			}
			if err := prune(); err != nil {
				genErr <- fmt.Errorf("prune: %w", err)
				return
			}
		}
	})
	type rssSample struct {
		at  time.Duration
		rss int64
	}
	var samples []rssSample
	start := time.Now()
	every := min(5*time.Second, run/20)
	for time.Since(start) < run {
		time.Sleep(every)
		samples = append(samples, rssSample{time.Since(start), pbsfsRSS(t, pid)})
		if len(samples)%60 == 0 {
			t.Logf("%v: rss %d MiB, %d failures so far", time.Since(start).Round(time.Second), samples[len(samples)-1].rss>>20, len(st.failures))
		}
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(scaled(2 * time.Minute)):
		t.Fatalf("clients still busy 2 minutes after the end: pbsfs hangs\n%s", m.stderr)
	}
	if err := <-genErr; err != nil {
		t.Errorf("generator: %v", err)
	}
	totalOps := 0
	for _, o := range ops {
		totalOps += len(o)
	}
	for i, c := range pbs {
		if err := c.Wait(); err != nil {
			t.Errorf("PBS writer %d: %v: %s", i, err, pbsOut[i])
			continue
		}
		var res pbsWriterResult
		if err := json.Unmarshal(pbsOut[i].Bytes(), &res); err != nil {
			t.Fatalf("PBS writer %d: %q: %v", i, pbsOut[i], err)
		}
		if res.Err != "" || res.LostCount > 0 {
			t.Errorf("PBS writer on %s: err %q, %d lost updates: %q", soakNotes[i], res.Err, res.LostCount, res.Lost)
		}
		mm, _ := loadManifest(t, store, soakNotes[i])
		v, _ := mm.Unprotected().Get("verify_state")
		s, _ := mm.Unprotected().Get("chunk_upload_stats")
		if upidSeq(t, v) != res.Verify || statsSeq(t, s) != res.Stats {
			t.Errorf("%s: PBS's last updates lost: on disk verify %d, stats %d; written %d, %d",
				soakNotes[i], upidSeq(t, v), statsSeq(t, s), res.Verify, res.Stats)
		}
		t.Logf("PBS writer on %s: %d + %d manifest updates, none lost", soakNotes[i], res.Verify, res.Stats)
	}

	// Notes on disk: the last accepted whole save and the accepted
	// appends after it; every ESTALE and EAGAIN a real conflict.
	all := append(warm, gui...)
	for _, o := range ops {
		all = append(all, o...)
	}
	for _, s := range soakNotes {
		mm, _ := loadManifest(t, store, s)
		checkSoakNotes(t, s, mm.Notes(), all, slices.Index(soakNotes, s) < soakPBSWriters)
	}
	for _, f := range st.failures {
		t.Error(f)
	}

	// Resources back where they were.
	var fds, g int
	deadline := time.Now().Add(scaled(30 * time.Second))
	for {
		fds, g = pbsfsFDs(t, pid), pbsfsStatus(t, m)
		if (fds == baseFDs && g == baseG) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if fds != baseFDs {
		t.Errorf("pbsfs has %d open descriptors after the load, %d before: %s", fds, baseFDs, fdList(pid))
	}
	if g != baseG {
		t.Errorf("pbsfs has %d goroutines after the load, %d before", g, baseG)
	}
	first := min(time.Minute, run/3)
	var ref, last, peak int64
	for _, s := range samples {
		peak = max(peak, s.rss)
		if s.at <= first {
			ref = max(ref, s.rss)
		}
		if s.at >= run-run/3 {
			last = max(last, s.rss)
		}
	}
	// Flat: the long form allows a quarter and 16 MiB over the first
	// minute's peak; the bounded form, whose "first minute" is its first
	// 17 s and whose pbsfs may be a race-detector build, only catches gross
	// leaks (half and 32 MiB).
	limit := ref + ref/4 + 16<<20
	if run < 5*time.Minute {
		limit = ref + ref/2 + 32<<20
	}
	if last > limit {
		t.Errorf("RSS grew: %d MiB at most in the first %v, %d MiB at most in the last third (limit %d MiB)", ref>>20, first, last>>20, limit>>20)
	}
	keys := make([]string, 0, len(st.counts))
	for k := range st.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, st.counts[k])
	}
	t.Logf("soak %v, %d clients: %d operations (%.0f/s):%s", run, soakClients, totalOps+200, float64(totalOps)/run.Seconds(), b.String())
	t.Logf("pbsfs: fds %d before, %d after; goroutines %d before, %d after; RSS %d MiB before the load, "+
		"max %d MiB in the first %v, max %d MiB in the last third, peak %d MiB",
		baseFDs, fds, baseG, g, baseRSS>>20, ref>>20, first, last>>20, peak>>20)
	m.stop()
}

// soakStep does one random operation as client c (-1: the warm-up, which
// goes through every kind in turn) and returns the notes write it made.
func soakStep(m *mount, st *soakState, rng *rand.Rand, c, i int, archives map[string][]byte, image string) (soakOp, bool) {
	kinds := []string{"ls", "ls", "stat", "stat", "notes", "notes", "notes", "save", "append", "append",
		"manifest", "manifest", "archive", "image", "rmdir", "gen-read"}
	kind := kinds[rng.IntN(len(kinds))]
	if c < 0 {
		kind = kinds[i%len(kinds)]
	}
	snap := soakNotes[rng.IntN(len(soakNotes))]
	genSnaps := func() []string {
		names, _ := readNames(m.path("host/soak-gen"))
		var out []string
		for _, n := range names {
			if datastore.ValidBackupTime(n) {
				out = append(out, n)
			}
		}
		return out
	}
	switch kind {
	case "ls":
		dirs := []string{"", "vm", "vm/100", "ns/prod/vm/300", snap, "host/soak-gen"}
		d := dirs[rng.IntN(len(dirs))]
		_, err := os.ReadDir(m.path(d))
		st.count(kind, err)
		if !allowed(err) && !(d == "host/soak-gen" && allowed(err, syscall.ENOENT)) {
			st.fail("ls %s: %v", d, err)
		}
	case "stat":
		files := []string{"notes", "manifest.json", "qemu-server.conf", "drive-scsi0.img", "owner"}
		f := files[rng.IntN(len(files))]
		p := m.path(snap, f)
		if f == "owner" {
			p = m.path(filepath.Dir(snap), f)
		}
		if f == "qemu-server.conf" || f == "drive-scsi0.img" {
			p = m.path(demo.SampleVM, f)
		}
		_, err := os.Stat(p)
		st.count(kind, err)
		if err != nil {
			st.fail("stat %s: %v", p, err)
		}
	case "notes":
		b, err := os.ReadFile(m.path(snap, "notes"))
		st.count(kind, err)
		if err != nil {
			st.fail("read %s/notes: %v", snap, err)
			break
		}
		text := string(b)
		if text == "" {
			break // a writer's pending O_TRUNC, as on a local disk
		}
		if !strings.HasSuffix(text, "\n") {
			st.fail("read %s/notes: torn text %q", snap, text)
			break
		}
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if !st.known(snap, line) {
				st.fail("read %s/notes: line %q was never written (torn?) in %q", snap, line, text)
			}
		}
	case "save", "append":
		line := fmt.Sprintf("soak c%d w%d", c, i)
		if kind == "append" {
			line = fmt.Sprintf("soak c%d a%d", c, i)
		}
		st.attempt(snap, line)
		// The mount's writers of one notes file take turns: writers
		// sharing a file at the same time interleave their bytes on any
		// file system. Conflicts come from the GUI writer (soakGUI).
		st.writing[snap].Lock()
		defer st.writing[snap].Unlock()
		op := soakOp{kind: kind, snap: snap, line: line, start: time.Now()}
		var err error
		if kind == "save" {
			err = os.WriteFile(m.path(snap, "notes"), []byte(line+"\n"), 0o644)
		} else {
			var f *os.File
			if f, err = os.OpenFile(m.path(snap, "notes"), os.O_WRONLY|os.O_APPEND, 0); err == nil {
				_, err = f.WriteString(line + "\n")
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		}
		op.end, op.errno = time.Now(), errnoOf(err)
		st.count(kind, err)
		if err != nil && op.errno == 0 {
			op.errno = syscall.EIO
		}
		if !allowed(err, syscall.EAGAIN) && !(kind == "append" && allowed(err, syscall.ESTALE)) {
			st.fail("%s %s/notes: %v", kind, snap, err)
		}
		return op, true
	case "manifest":
		b, err := os.ReadFile(m.path(snap, "manifest.json"))
		st.count(kind, err)
		// ESTALE: replaced between open and read — these manifests change
		// all the time (notes saves, PBS's writers).
		if !allowed(err, syscall.ESTALE) {
			st.fail("read %s/manifest.json: %v", snap, err)
		} else if err == nil && !json.Valid(b) {
			st.fail("read %s/manifest.json: not JSON (torn?): %.100q", snap, b)
		}
	case "archive":
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range archives {
				if !yield(k) {
					return
				}
			}
		})
		rel := keys[rng.IntN(len(keys))]
		b, err := os.ReadFile(m.path(rel))
		st.count(kind, err)
		if err != nil {
			st.fail("read %s: %v", rel, err)
		} else if !bytes.Equal(b, archives[rel]) {
			st.fail("read %s: %d bytes differ from the archive's", rel, len(b))
		}
	case "image":
		f, err := os.Open(image)
		if err == nil {
			buf := make([]byte, 4096)
			var n int
			n, err = f.ReadAt(buf, rng.Int64N(8<<30-4096)&^4095)
			if err == nil && n != len(buf) {
				err = io.ErrUnexpectedEOF
			}
			f.Close()
		}
		st.count(kind, err)
		if err != nil {
			st.fail("read %s: %v", image, err)
		}
	case "rmdir":
		if rng.IntN(10) == 0 || c < 0 {
			err := os.Remove(m.path(demo.SampleProtected))
			st.count("rmdir-protected", err)
			if errnoOf(err) != syscall.EPERM {
				st.fail("rmdir of the protected snapshot: %v, want EPERM", err)
			}
			break
		}
		snaps := genSnaps()
		if len(snaps) == 0 {
			break
		}
		sn := "host/soak-gen/" + snaps[rng.IntN(len(snaps))]
		err := os.Remove(m.path(sn))
		st.count(kind, err)
		switch {
		case err == nil:
			if _, err := os.Lstat(m.storePath(sn)); !errors.Is(err, os.ErrNotExist) {
				st.fail("rmdir %s succeeded, but the snapshot is still in the store: %v", sn, err)
			}
		case !allowed(err, syscall.ENOENT, syscall.EBUSY):
			// ENOENT: pruned or removed meanwhile; EBUSY: the generator
			// holds its snapshot lock (a backup in progress).
			st.fail("rmdir %s: %v", sn, err)
		}
	case "gen-read":
		snaps := genSnaps()
		if len(snaps) == 0 {
			break
		}
		sn := "host/soak-gen/" + snaps[rng.IntN(len(snaps))]
		b, err := os.ReadFile(m.path(sn, "notes"))
		st.count(kind, err)
		switch {
		case err == nil:
			if want := "generated " + filepath.Base(sn); string(b) != want {
				st.fail("read %s/notes: %q, want %q", sn, b, want)
			}
		case !allowed(err, syscall.ENOENT):
			st.fail("read %s/notes: %v", sn, err)
		}
	}
	return soakOp{}, false
}

var soakLine = regexp.MustCompile(`^soak c-?\d+ [wa]\d+$`)

// checkSoakNotes checks the notes left on disk against the accepted writes:
// the first line is the last accepted whole save (or the initial text), no
// accepted whole save began after that one ended, and the other lines are
// exactly the accepted appends that must come after it — each once, none
// refused. Each refusal must match a real conflict: an ESTALE append
// overlapped an accepted save of the same notes, an EAGAIN save waited for
// a lock others held (PBS's writers, or an overlapping accepted save).
func checkSoakNotes(t *testing.T, snap, text string, ops []soakOp, pbsWriter bool) {
	t.Helper()
	var mine []soakOp
	accepted := map[string]soakOp{}
	for _, o := range ops {
		if o.snap == snap {
			mine = append(mine, o)
			if o.errno == 0 {
				accepted[o.line] = o
			}
		}
	}
	overlapsAccepted := func(o soakOp) bool {
		for _, x := range mine {
			if x.errno == 0 && x.line != o.line && !x.end.Before(o.start) && !x.start.After(o.end) {
				return true
			}
		}
		return false
	}
	refused := 0
	for _, o := range mine {
		switch o.errno {
		case 0:
		case syscall.ESTALE:
			refused++
			if !overlapsAccepted(o) {
				t.Errorf("%s: append %q got ESTALE, but no other save of these notes overlapped it", snap, o.line)
			}
		case syscall.EAGAIN:
			refused++
			if !pbsWriter && !overlapsAccepted(o) {
				t.Errorf("%s: %s %q got EAGAIN, but nobody else wrote these notes or the manifest meanwhile", snap, o.kind, o.line)
			}
		default:
			refused++
		}
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if !strings.HasSuffix(text, "\n") || len(lines) == 0 {
		t.Errorf("%s: notes on disk %q: torn", snap, text)
		return
	}
	base := soakOp{line: "soak init"} // before every op
	if lines[0] != "soak init" {
		w, ok := accepted[lines[0]]
		if !ok || w.kind == "append" {
			t.Errorf("%s: notes on disk start with %q, not an accepted whole save", snap, lines[0])
			return
		}
		base = w
	}
	for _, o := range accepted {
		if o.kind != "append" && o.line != base.line && o.start.After(base.end) {
			t.Errorf("%s: accepted save %q (started %v after %q was saved) is lost: on disk %q",
				snap, o.line, o.start.Sub(base.end), base.line, text)
		}
	}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		o, ok := accepted[l]
		switch {
		case !soakLine.MatchString(l):
			t.Errorf("%s: notes on disk hold %q, which nobody wrote (torn?)", snap, l)
		case !ok:
			t.Errorf("%s: notes on disk hold %q, a write that was refused", snap, l)
		case o.kind != "append":
			t.Errorf("%s: notes on disk hold the whole save %q after %q", snap, l, lines[0])
		case seen[l]:
			t.Errorf("%s: append %q is on disk twice", snap, l)
		case !base.end.IsZero() && o.end.Before(base.start):
			t.Errorf("%s: append %q ended before the save %q it follows began", snap, l, base.line)
		}
		seen[l] = true
	}
	for _, o := range accepted {
		if o.kind == "append" && !seen[o.line] && (base.end.IsZero() || o.start.After(base.end)) {
			t.Errorf("%s: accepted append %q (after %q) is lost: on disk %q", snap, o.line, base.line, text)
		}
	}
	t.Logf("%s: %d notes writes, %d accepted, %d refused; on disk: %q and %d appends", snap, len(mine), len(accepted), refused, lines[0], len(lines)-1)
}

// pbsfsFDs counts the open descriptors of process pid.
func pbsfsFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdList describes the open descriptors of pid (for a failure message).
func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+"->"+target)
	}
	return strings.Join(out, " ")
}

// pbsfsRSS is the resident set size of pid in bytes.
func pbsfsRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

var statusGoroutines = regexp.MustCompile(`pbsfs: status: goroutines=(\d+) `)

// pbsfsStatus asks the mount for its status line (SIGUSR1) and returns the
// number of goroutines it reports.
func pbsfsStatus(t *testing.T, m *mount) int {
	t.Helper()
	before := len(statusGoroutines.FindAllString(m.stderr.String(), -1))
	if err := m.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(scaled(10 * time.Second))
	for {
		all := statusGoroutines.FindAllStringSubmatch(m.stderr.String(), -1)
		if len(all) > before {
			n, _ := strconv.Atoi(all[len(all)-1][1])
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status line after SIGUSR1:\n%s", m.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
