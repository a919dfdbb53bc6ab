package integration

// Helpers of editors_test.go: running real editors and tools against the
// mount with a deadline, driving interactive ones in a private tmux
// server, and checking a save against the datastore on disk.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// editorTimeout bounds every external program the editor tests run: a hung
// editor fails its test instead of hanging CI.
var editorTimeout = scaled(60 * time.Second)

// requireEditorTools skips the test when a program is missing, or fails it when
// CI=true: .ci/run installs them, so CI must run these tests.
func requireEditorTools(t *testing.T, names ...string) {
	t.Helper()
	testsupport.RequireTools(t, names...)
}

// editorEnv is the environment editors run in: a fresh HOME (no user
// vimrc, nanorc, .emacs or backup directories), a UTF-8 locale and a
// terminal type for tmux. Nothing else is inherited but PATH.
type editorEnv struct {
	t    *testing.T
	home string
	env  []string
}

func newEditorEnv(t *testing.T) *editorEnv {
	t.Helper()
	home := t.TempDir()
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	user := "root"
	if os.Geteuid() != 0 {
		user = fmt.Sprint(os.Geteuid())
	}
	return &editorEnv{t: t, home: home, env: []string{
		"PATH=" + path,
		"HOME=" + home,
		"USER=" + user,
		"LOGNAME=" + user,
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"TERM=xterm-256color",
		"SHELL=/bin/sh",
	}}
}

// run runs a program in dir with the editor environment plus extra
// variables and returns its combined output. It fails with a clear message
// when the program outlives editorTimeout (it is killed then).
func (e *editorEnv) run(dir string, extra []string, name string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), editorTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(slices.Clone(e.env), extra...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s did not finish within %v (killed): %w", name, editorTimeout, ctx.Err())
	}
	return string(out), err
}

// mustRun is run that has to succeed (exit status 0).
func (e *editorEnv) mustRun(dir string, extra []string, name string, args ...string) string {
	e.t.Helper()
	out, err := e.run(dir, extra, name, args...)
	if err != nil {
		e.t.Fatalf("%s %q in %s: %v\n%s", name, args, dir, err, out)
	}
	return out
}

// tmuxSession is one interactive program running in a private tmux server
// (its own socket, so the test never touches anyone else's tmux).
type tmuxSession struct {
	e      *editorEnv
	sock   string
	rcFile string // the program's exit status is written here when it ends
	killed bool
}

// startTmux starts a detached 100x30 session running the shell command
// script in dir; the session's shell writes the exit status of script to
// a file when it ends. The server is killed at the end of the test.
func (e *editorEnv) startTmux(dir, script string) *tmuxSession {
	e.t.Helper()
	tmp := e.t.TempDir()
	s := &tmuxSession{e: e, sock: filepath.Join(tmp, "tmux.sock"), rcFile: filepath.Join(tmp, "rc")}
	wrapped := fmt.Sprintf("%s; echo $? > %s.tmp && mv %s.tmp %s", script, s.rcFile, s.rcFile, s.rcFile)
	e.mustRun(dir, nil, "tmux", "-S", s.sock, "-f", "/dev/null", "new-session", "-d", "-s", "ed",
		"-x", "100", "-y", "30", "-c", dir, wrapped)
	e.t.Cleanup(s.kill)
	return s
}

func (s *tmuxSession) kill() {
	if s.killed {
		return
	}
	s.killed = true
	// An error here means the server is already gone (the session ended).
	_, _ = s.e.run("/", nil, "tmux", "-S", s.sock, "kill-server")
}

// keys sends tmux key names (C-o, Enter, M-\ ...).
func (s *tmuxSession) keys(keys ...string) {
	s.e.t.Helper()
	s.e.mustRun("/", nil, "tmux", append([]string{"-S", s.sock, "send-keys", "-t", "ed"}, keys...)...)
}

// text types literal text.
func (s *tmuxSession) text(text string) {
	s.e.t.Helper()
	s.e.mustRun("/", nil, "tmux", "-S", s.sock, "send-keys", "-t", "ed", "-l", "--", text)
}

// screen returns what the pane shows.
func (s *tmuxSession) screen() string {
	s.e.t.Helper()
	out, err := s.e.run("/", nil, "tmux", "-S", s.sock, "capture-pane", "-p", "-t", "ed")
	if err != nil {
		return "(capture-pane: " + err.Error() + ")"
	}
	return out
}

// waitScreen waits until the pane shows want and fails the test with the
// pane's content when it does not within editorTimeout.
func (s *tmuxSession) waitScreen(want string) {
	s.e.t.Helper()
	deadline := time.Now().Add(editorTimeout)
	for {
		scr := s.screen()
		if strings.Contains(scr, want) {
			return
		}
		if time.Now().After(deadline) {
			s.e.t.Fatalf("tmux: %q not shown within %v; screen:\n%s", want, editorTimeout, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait waits for the program to end and returns its exit status; on
// timeout it fails the test with the pane's content.
func (s *tmuxSession) wait() int {
	s.e.t.Helper()
	deadline := time.Now().Add(editorTimeout)
	for {
		if b, err := os.ReadFile(s.rcFile); err == nil {
			var rc int
			if _, err := fmt.Sscan(string(b), &rc); err != nil {
				s.e.t.Fatalf("tmux: bad exit status %q", b)
			}
			s.kill()
			return rc
		}
		if time.Now().After(deadline) {
			s.e.t.Fatalf("tmux: program did not exit within %v; screen:\n%s", editorTimeout, s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// editTarget is a notes file under test: a snapshot's (kept in its
// manifest) or a group's (a file in the group directory).
type editTarget struct {
	name string // subtest name
	rel  string // datastore-relative snapshot or group directory
	snap bool
}

// editTargets are the notes every editor case saves: a signed snapshot
// manifest with non-ASCII notes, a group with notes, and a group without a
// notes file yet.
var editTargets = []editTarget{
	{name: "snapshot", rel: demo.SampleEncrypted, snap: true},
	{name: "group", rel: "vm/100"},
	{name: "new-group-notes", rel: "vm/101"},
}

// storedFile is the datastore file the notes of tg live in.
func (tg editTarget) storedFile(store string) string {
	if tg.snap {
		return filepath.Join(store, tg.rel, "index.json.blob")
	}
	return filepath.Join(store, tg.rel, "notes")
}

// storedNotes decodes the notes from the datastore, independently of the
// mount: manifest.Load of index.json.blob, or the group notes file ("" if
// there is none).
func (tg editTarget) storedNotes(t *testing.T, store string) string {
	t.Helper()
	if tg.snap {
		m, _ := loadManifest(t, store, tg.rel)
		return m.Notes()
	}
	b, err := os.ReadFile(tg.storedFile(store))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// notesState is what a save must leave alone, captured before it.
type notesState struct {
	tg      editTarget
	store   string
	digest  map[string]string // the whole datastore
	signed  signedPart        // snapshots
	hasFile bool              // the stored file exists
	uid     uint32
	gid     uint32
	mode    os.FileMode
}

func captureEditState(t *testing.T, store string, tg editTarget) notesState {
	t.Helper()
	st := notesState{tg: tg, store: store, digest: treeDigest(t, store)}
	if tg.snap {
		m, _ := loadManifest(t, store, tg.rel)
		st.signed = captureSigned(t, m)
	}
	if _, err := os.Stat(tg.storedFile(store)); err == nil {
		st.hasFile = true
		st.uid, st.gid, st.mode = fileOwner(t, tg.storedFile(store))
	}
	return st
}

// checkSaved checks that a save left exactly want as the notes: decoded
// from the datastore and read through the mount; that nothing else in the
// datastore changed (only the target's index.json.blob or group notes file
// and its directory's mtime may), no temporary file was left there, the
// signed part and signature are untouched and the stored file kept its
// owner and mode; and that the mount directory shows exactly the expected
// scratch files beside its own entries.
func (st notesState) checkSaved(t *testing.T, m *mount, what, want string, leftovers ...string) {
	t.Helper()
	tg := st.tg
	if got := tg.storedNotes(t, st.store); got != want {
		t.Errorf("%s: notes in the datastore %q, want %q", what, got, want)
	}
	got, err := os.ReadFile(m.path(tg.rel, "notes"))
	if err != nil || string(got) != want {
		t.Errorf("%s: notes read through the mount %q, %v; want %q", what, got, err, want)
	}
	if fi, err := os.Stat(m.path(tg.rel, "notes")); err != nil || fi.Size() != int64(len(want)) {
		t.Errorf("%s: stat notes through the mount: %v, size %d, want %d", what, err, editSize(fi), len(want))
	}

	after := treeDigest(t, st.store)
	before := st.digest
	allowed := []string{tg.rel, filepath.Join(tg.rel, "index.json.blob")}
	if !tg.snap {
		allowed = []string{tg.rel, filepath.Join(tg.rel, "notes")}
	}
	before, after = digestWithout(before, allowed), digestWithout(after, allowed)
	if !sameDigests(before, after) {
		t.Errorf("%s: the datastore changed beyond the notes:", what)
		diffDigests(t, before, after)
	}
	if _, err := os.Stat(tg.storedFile(st.store)); err != nil && (st.hasFile || want != "") {
		t.Errorf("%s: %v", what, err)
	}

	if tg.snap {
		mm, _ := loadManifest(t, st.store, tg.rel)
		st.signed.check(t, what, mm)
		if st.signed.signed {
			if err := mm.CheckSignature(manifest.DeriveIDKey(demo.DemoKey())); err != nil {
				t.Errorf("%s: signature no longer verifies: %v", what, err)
			}
		}
	}
	if st.hasFile {
		if u, g, mode := fileOwner(t, tg.storedFile(st.store)); u != st.uid || g != st.gid || mode != st.mode {
			t.Errorf("%s: %s owner %d:%d mode %v, was %d:%d %v", what, tg.storedFile(st.store), u, g, mode, st.uid, st.gid, st.mode)
		}
	}

	names, err := readNames(m.path(tg.rel))
	if err != nil {
		t.Fatalf("%s: list %s: %v", what, m.path(tg.rel), err)
	}
	var extra []string
	for _, n := range names {
		if !slices.Contains(expectedNames(t, st.store, tg.rel), n) {
			extra = append(extra, n)
		}
	}
	slices.Sort(leftovers)
	if !slices.Equal(extra, leftovers) {
		t.Errorf("%s: scratch files in the mount %q, want %q", what, extra, leftovers)
	}
}

func editSize(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}

// digestWithout returns d without the given keys.
func digestWithout(d map[string]string, keys []string) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

func sameDigests(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// chownEditTargets makes the targets' stored files belong to backup:backup
// with mode 0644, as on a PBS host, when running as root (a new group
// notes file must then get the group directory's owner, so the group
// directories are given to backup as well).
func chownEditTargets(t *testing.T, store string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	uid, gid := backupIDs(t)
	for _, tg := range editTargets {
		paths := []string{filepath.Join(store, tg.rel)}
		if _, err := os.Stat(tg.storedFile(store)); err == nil {
			paths = append(paths, tg.storedFile(store))
		}
		for _, p := range paths {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// openEditStore opens the mount's datastore in the test process, with the
// mount's lock configuration, to change notes as PBS would.
func openEditStore(m *mount) *datastore.Store {
	m.t.Helper()
	st, err := datastore.Open(m.store, datastore.Options{
		Lock: lock.Config{Scheme: lock.Run, Dir: m.lockDir, Store: storeName, UID: -1, GID: -1},
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return st
}

// setNotesOutside changes tg's notes directly in the datastore, as the PBS
// GUI or another process would.
func setNotesOutside(t *testing.T, st *datastore.Store, tg editTarget, text string) {
	t.Helper()
	var err error
	if tg.snap {
		err = st.SetNotes(context.Background(), snapshotOf(t, tg.rel), text)
	} else {
		parts := strings.Split(tg.rel, "/")
		err = st.SetGroupNotes(context.Background(), datastore.Group{Type: parts[0], ID: parts[1]}, text)
	}
	if err != nil {
		t.Fatalf("set notes of %s outside the mount: %v", tg.rel, err)
	}
}

// writeOutside writes text to a new file outside the mount and returns its path.
func writeOutside(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// editLines splits text into lines without their newlines (text ends with one).
func editLines(text string) []string {
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}
