package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pbsfs/activeops"
	"pbsfs/datastore"
	"pbsfs/internal/pbssim"
	"pbsfs/lock"
	"pbsfs/pbsconfig"
)

// pbsEnv is a mounted datastore that follows a scratch
// /etc/proxmox-backup (cfgDir) and registers in a scratch
// active-operations directory, with a short recheck interval.
type pbsEnv struct {
	t       *testing.T
	base    string // the datastore
	cfgDir  string
	aoDir   string
	mnt     string
	fs      *FS
	store   *datastore.Store
	logs    *syncBuffer
	recheck time.Duration
	head    string // the section's first lines (header, path)
	locks   string
	name    string // the datastore's PBS name
}

const pbsRecheck = 100 * time.Millisecond

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	t  *testing.T
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Log(strings.TrimRight(string(p), "\n"))
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newPBSEnv makes a datastore at <tmp>/store with vm/100 (snapshots
// tFirst with notes and tSecond), a datastore.cfg naming it "test" with the
// extra property lines given, and mounts it with the PBS rules on.
func newPBSEnv(t *testing.T, extra ...string) *pbsEnv {
	t.Helper()
	base := filepath.Join(t.TempDir(), "store")
	if err := datastore.Create(base, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fillPBSStore(t, base)
	e := preparePBSEnv(t, base, "test", "datastore: test\n\tpath "+base+"\n")
	e.setConfig(extra...)
	e.mount(pbsMount{})
	return e
}

// fillPBSStore writes vm/100 with snapshots tFirst (notes firstNotes) and
// tSecond into the datastore at base.
func fillPBSStore(t *testing.T, base string) {
	t.Helper()
	w, err := datastore.Open(base, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: "test", UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // holds the datastore's root open: not while the tests look
	g := datastore.Group{Type: "vm", ID: "100"}
	if err := w.CreateGroup(g, "root@pam"); err != nil {
		t.Fatal(err)
	}
	writeSnap(t, w, datastore.Snapshot{Group: g, Time: tFirst}, firstNotes)
	writeSnap(t, w, datastore.Snapshot{Group: g, Time: tSecond}, "")
}

// preparePBSEnv sets up the scratch PBS directories for the datastore at
// base, whose datastore.cfg section starts with head.
func preparePBSEnv(t *testing.T, base, name, head string) *pbsEnv {
	t.Helper()
	dir := t.TempDir()
	e := &pbsEnv{t: t, base: base, cfgDir: filepath.Join(dir, "etc"), head: head, name: name,
		aoDir: filepath.Join(dir, "run", "active-operations"), recheck: pbsRecheck, locks: filepath.Join(dir, "locks")}
	if err := os.MkdirAll(e.cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.logs = &syncBuffer{t: t}
	return e
}

// pbsMount are the options of a pbsEnv's store.
type pbsMount struct {
	archives datastore.ArchiveOptions
	byUUID   string        // the mount check's /dev/disk/by-uuid
	linger   time.Duration // 0: 200 ms
}

// mount opens the store with PBS's rules on and mounts it.
func (e *pbsEnv) mount(o pbsMount) {
	t := e.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.linger == 0 {
		o.linger = 200 * time.Millisecond
	}
	var err error
	e.store, err = datastore.Open(e.base, datastore.Options{
		Lock:     lock.Config{Scheme: lock.Run, Dir: e.locks, Store: e.name, UID: -1, GID: -1},
		Logger:   log,
		Archives: o.archives,
		PBS: &datastore.PBSOptions{
			ConfigDir: e.cfgDir, Name: e.name, UID: -1, GID: -1, Linger: o.linger, ByUUIDDir: o.byUUID,
			ActiveOps: activeops.Options{Dir: e.aoDir, UID: -1, GID: -1},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.fs = New(e.store, Options{Recheck: e.recheck, Logger: log})
	e.mnt = mountEnv(t, &env{t: t, fs: e.fs})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.fs.Revalidate(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// setConfig replaces datastore.cfg as PBS does (temp file, rename).
func (e *pbsEnv) setConfig(extra ...string) {
	e.writeConfig(e.head + strings.Join(extra, ""))
}

func (e *pbsEnv) writeConfig(content string) {
	e.t.Helper()
	tmp := filepath.Join(e.cfgDir, ".datastore.cfg.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o640); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.cfgDir, pbsconfig.DatastoreFile)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *pbsEnv) notes() string { return filepath.Join(e.mnt, "vm/100", tFirst, NotesName) }

// eventually runs script in the mount until check accepts its output and
// error, for at most a generous deadline (the machine may be loaded), and
// returns how long it took.
func (e *pbsEnv) eventually(what, script string, check func(out string, err error) bool) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		out, err := sh(e.t, e.mnt, script)
		if check(out, err) {
			return time.Since(start)
		}
		if time.Since(start) > 20*time.Second {
			e.t.Fatalf("%s: still %q %v after %v", what, out, err, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heldDescriptors lists this process's descriptors on the datastore.
func (e *pbsEnv) heldDescriptors() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var held []string
	for _, d := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", d.Name()))
		if err == nil && (target == e.base || strings.HasPrefix(target, e.base+"/")) {
			held = append(held, d.Name()+" -> "+target)
		}
	}
	return held
}

// ownEntry returns this process's entry in the active-operations file.
func (e *pbsEnv) ownEntry() (activeops.Counts, bool) {
	data, err := os.ReadFile(filepath.Join(e.aoDir, e.name))
	if err != nil {
		return activeops.Counts{}, false
	}
	list, err := activeops.Parse(data)
	if err != nil {
		e.t.Fatalf("active-operations file does not parse: %v", err)
	}
	for _, en := range list {
		if int(en.PID) == os.Getpid() {
			return en.Ops, true
		}
	}
	return activeops.Counts{}, false
}

func hasErr(out string, err error, text string) bool {
	return err != nil && strings.Contains(out, text)
}

// TestPBSMaintenanceModes switches the datastore through every mode of
// §10.2 while mounted and checks that pbsfs follows within the recheck
// interval (generously timed), both ways, letting go of the datastore where
// reads are forbidden.
func TestPBSMaintenanceModes(t *testing.T) {
	e := newPBSEnv(t)
	mustSh(t, e.mnt, "cat vm/100/"+tFirst+"/notes && echo start >> vm/100/"+tFirst+"/notes")

	// read-only: changes refused at once (the check under the config lock
	// is made for every change), with the admin's message in the log;
	// reads go on.
	e.setConfig("\tmaintenance-mode read-only,message=disk%20swap\n")
	out, err := sh(t, e.mnt, "echo x >> vm/100/"+tFirst+"/notes")
	if !hasErr(out, err, "Read-only file system") {
		t.Fatalf("notes save in read-only mode: %q %v", out, err)
	}
	if out, err := sh(t, e.mnt, "rmdir vm/100/"+tSecond); !hasErr(out, err, "Read-only file system") {
		t.Fatalf("rmdir in read-only mode: %q %v", out, err)
	}
	if !strings.Contains(e.logs.String(), "read-only maintenance mode: disk swap") {
		t.Error("the admin's message is not in the log")
	}
	if got := mustSh(t, e.mnt, "cat vm/100/"+tFirst+"/notes"); got != firstNotes+"start\n" {
		t.Fatalf("notes in read-only mode: %q", got)
	}

	for _, mode := range []string{"offline,message=swap", "unmount", "s3-refresh", "delete", "type=vacation"} {
		t.Run(mode, func(t *testing.T) {
			e.setConfig("\tmaintenance-mode " + mode + "\n")
			took := e.eventually(mode+": reads refused", "cat vm/100/"+tFirst+"/notes", func(out string, err error) bool {
				return hasErr(out, err, "Input/output error")
			})
			t.Logf("%s: reads refused after %v (recheck interval %v)", mode, took, e.recheck)
			if out, err := sh(t, e.mnt, "ls vm/100"); !hasErr(out, err, "Input/output error") {
				t.Errorf("%s: ls: %q %v", mode, out, err)
			}
			if out, err := sh(t, e.mnt, "echo y >> vm/100/"+tFirst+"/notes"); err == nil {
				t.Errorf("%s: notes save succeeded: %q", mode, out)
			}
			if held := e.heldDescriptors(); len(held) > 0 {
				t.Errorf("%s: descriptors held on the datastore: %v", mode, held)
			}
			if c, ok := e.ownEntry(); ok {
				t.Errorf("%s: still registered with PBS: %+v", mode, c)
			}
			e.setConfig()
			took = e.eventually(mode+" lifted: served again", "cat vm/100/"+tFirst+"/notes", func(out string, err error) bool {
				return err == nil && out == firstNotes+"start\n"
			})
			t.Logf("%s lifted: served again after %v", mode, took)
		})
	}

	// A datastore.cfg PBS cannot parse (there are no comments) and a
	// removed section take the datastore away too.
	for name, content := range map[string]string{
		"comment": "# pbsfs test\ndatastore: test\n\tpath " + e.base + "\n",
		"removed": "datastore: other\n\tpath /nonexistent\n",
	} {
		e.writeConfig(content)
		e.eventually(name+": reads refused", "cat vm/100/"+tFirst+"/notes", func(out string, err error) bool {
			return hasErr(out, err, "Input/output error")
		})
		e.setConfig()
		e.eventually(name+" fixed: served again", "cat vm/100/"+tFirst+"/notes", func(out string, err error) bool {
			return err == nil
		})
	}
	mustSh(t, e.mnt, "echo end >> vm/100/"+tFirst+"/notes")
}

// TestPBSIdleLetsGo: after use, pbsfs closes its descriptor on the
// datastore and deregisters, within the linger.
func TestPBSIdleLetsGo(t *testing.T) {
	e := newPBSEnv(t)
	mustSh(t, e.mnt, "ls -lR >/dev/null && cat vm/100/"+tFirst+"/notes >/dev/null")
	e.waitIdle()
	if data, err := os.ReadFile(filepath.Join(e.aoDir, "test")); err != nil || string(data) != "[]" {
		t.Fatalf("active operations when idle: %q %v", data, err)
	}
}

// TestPBSActiveOperations: a second process reads the active-operations
// file as PBS does, under its lock, while pbsfs saves notes in a loop and
// serves readers, and a PBS-like process registers operations of its own.
func TestPBSActiveOperations(t *testing.T) {
	e := newPBSEnv(t)
	if err := os.MkdirAll(e.aoDir, 0o750); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	planted := fmt.Sprintf(`[{"pid":%d,"starttime":1,"active_operations":{"read":1,"write":1}}]`, dead.Process.Pid)
	if err := os.WriteFile(filepath.Join(e.aoDir, "test"), []byte(planted), 0o660); err != nil {
		t.Fatal(err)
	}
	reader, err := pbssim.Start("reader " + e.aoDir + " test")
	if err != nil {
		t.Fatal(err)
	}
	var samples []pbssim.Sample
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for reader.Out.Scan() {
			var s pbssim.Sample
			if err := json.Unmarshal(reader.Out.Bytes(), &s); err != nil {
				t.Errorf("reader output %q: %v", reader.Out.Text(), err)
				continue
			}
			samples = append(samples, s)
		}
	})
	const pbsOps = 40
	pbs, err := pbssim.Start(fmt.Sprintf("writer %s test %d", e.aoDir, pbsOps))
	if err != nil {
		t.Fatal(err)
	}
	defer pbs.Stop()

	var wg sync.WaitGroup
	wg.Go(func() {
		mustSh(t, e.mnt, `i=0; while [ $i -lt 30 ]; do echo "save $i" > vm/100/`+tFirst+`/notes; i=$((i+1)); done`)
	})
	wg.Go(func() {
		mustSh(t, e.mnt, `i=0; while [ $i -lt 30 ]; do cat vm/100/`+tSecond+`/manifest.json vm/100/owner >/dev/null; i=$((i+1)); done`)
	})
	wg.Wait()
	if !pbs.Out.Scan() || pbs.Out.Text() != "done" {
		t.Fatalf("PBS-like writer: %q", pbs.Out.Text())
	}
	// Idle: pbsfs deregisters after the linger.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, reg := e.ownEntry(); !reg {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pbsfs still registered when idle")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // one more sample of the idle state
	if err := reader.Stop(); err != nil {
		t.Fatalf("reader: %v", err)
	}
	rwg.Wait()

	me, pbsPID := os.Getpid(), pbs.Cmd.Process.Pid
	var sawRead, sawWrite bool
	for i, s := range samples {
		if s.Bad != "" {
			t.Fatalf("sample %d: the file did not parse: %s", i, s.Bad)
		}
		own := s.ByPID[me]
		if own[0] > 1 || own[1] > 1 || own[0] < 0 || own[1] < 0 {
			t.Errorf("sample %d: pbsfs counts %v; it reads and writes through one descriptor and one writer here", i, own)
		}
		sawRead = sawRead || own[0] == 1
		sawWrite = sawWrite || own[1] == 1
	}
	if len(samples) < 10 || !sawRead || !sawWrite {
		t.Fatalf("%d samples; saw pbsfs reading %v, writing %v", len(samples), sawRead, sawWrite)
	}
	last := samples[len(samples)-1]
	if _, ok := last.ByPID[me]; ok || last.Read != pbsOps || last.Write != 0 || last.ByPID[pbsPID] != [2]int64{pbsOps, 0} {
		t.Fatalf("idle state %+v: want only the PBS-like process's %d reads", last, pbsOps)
	}
	data, _ := os.ReadFile(filepath.Join(e.aoDir, "test"))
	if strings.Contains(string(data), fmt.Sprintf(`"pid":%d,`, dead.Process.Pid)) {
		t.Errorf("the dead process's entry is still there: %s", data)
	}
	_ = io.Discard
}
