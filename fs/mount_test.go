package fs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"
	"bazil.org/fuse/fs/fstestutil"

	"pbsfs/internal/testsupport"
)

// mountEnv mounts e's file system on a temporary directory. Everything the
// tests do to the mount runs in child processes (sh, cat, vim, ...): a
// process must not fault on a FUSE mount it serves itself.
func mountEnv(t *testing.T, e *env, opts ...fuse.MountOption) string {
	t.Helper()
	return mountEnvConfig(t, e, nil, opts...)
}

// mountEnvConfig is mountEnv with a bazil server configuration (a Debug
// hook that watches the requests, say).
func mountEnvConfig(t *testing.T, e *env, conf *fusefs.Config, opts ...fuse.MountOption) string {
	t.Helper()
	testsupport.RequireFUSE(t)
	if len(opts) == 0 {
		opts = MountOptions(e.fs.ro, false)
	}
	mnt, err := fstestutil.MountedFuncT(t, func(m *fstestutil.Mount) fusefs.FS {
		e.fs.SetServer(m.Server)
		return e.fs
	}, conf, opts...)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(mnt.Close)
	return mnt.Dir
}

// sh runs a shell script in dir and returns its combined output.
//
// The shell changes into dir itself: exec.Cmd.Dir would make the forked
// child chdir into the mount before exec, while it still shares this
// process's memory (vfork). If the Go runtime of this process — the FUSE
// server — then stops the world for a GC, it waits for the forking thread
// forever, nobody answers the child's FUSE request, and the test, the child
// and the mount hang for good.
func sh(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `cd "$1" || exit 125; `+script, "sh", dir)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "LC_ALL=C.UTF-8", "TERM=dumb")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustSh(t *testing.T, dir, script string) string {
	t.Helper()
	out, err := sh(t, dir, script)
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return out
}

func TestMountBasics(t *testing.T) {
	e := newEnv(t)
	dir := mountEnv(t, e)
	snap := "vm/100/" + tFirst

	if got := mustSh(t, dir, "ls -a"); got != ".\n..\nct\nns\nvm\n" {
		t.Errorf("ls -a: %q", got)
	}
	if got := mustSh(t, dir, "ls "+snap+" vm/100/"+tUnfinished); !strings.Contains(got, "manifest.json\nnotes\n") {
		t.Errorf("ls snapshot: %q", got)
	}
	if got := mustSh(t, dir, "cat "+snap+"/notes"); got != firstNotes {
		t.Errorf("cat notes: %q", got)
	}
	// Sizes are what reads return.
	for _, f := range []string{snap + "/notes", snap + "/manifest.json", "vm/100/owner", "vm/100/notes"} {
		out := mustSh(t, dir, fmt.Sprintf("stat -c %%s %s; wc -c < %s", f, f))
		if l := strings.Fields(out); len(l) != 2 || l[0] != l[1] {
			t.Errorf("%s: stat size and bytes read differ: %q", f, out)
		}
	}
	// Stable, deterministic inode numbers.
	if got := strings.TrimSpace(mustSh(t, dir, "stat -c %i "+snap+"/notes")); got != fmt.Sprint(inodeOf(snap+"/notes")) {
		t.Errorf("inode %s, want %d", got, inodeOf(snap+"/notes"))
	}
	if out, err := sh(t, dir, "cat vm/100/"+tCorrupt+"/notes"); err == nil || !strings.Contains(out, "Input/output error") {
		t.Errorf("corrupt notes: %v %q", err, out)
	}
	if out, err := sh(t, dir, "cat vm/100/"+tUnfinished+"/notes"); err == nil || !strings.Contains(out, "No such file") {
		t.Errorf("unfinished notes: %v %q", err, out)
	}
	if out, err := sh(t, dir, "echo x > "+snap+"/manifest.json"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("write manifest.json: %v %q", err, out)
	}
	if out, err := sh(t, dir, "rm "+snap+"/manifest.json"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("rm manifest.json: %v %q", err, out)
	}
	if out, err := sh(t, dir, "mkdir vm/100/x"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mkdir: %v %q", err, out)
	}
	if out, err := sh(t, dir, "rmdir ct/200/2024-01-01T00:00:00Z"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("rmdir protected: %v %q", err, out)
	}
	// rename(notes, backup) leaves a copy and keeps notes; rename(scratch,
	// notes) commits.
	out := mustSh(t, dir, "cd "+snap+" && mv notes notes~ && cat notes~ && echo -- && cat notes && echo new > notes && cat notes~ && "+
		"echo fresh > tmp && mv tmp notes && cat notes && rm notes~ && ls -A")
	if want := firstNotes + "--\n" + firstNotes + firstNotes + "fresh\nmanifest.json\nnotes\n"; out != want {
		t.Errorf("rename dance: %q, want %q", out, want)
	}
	if got := e.snapNotes(vm100, tFirst); got != "fresh\n" {
		t.Errorf("notes after rename dance %q", got)
	}
	// rm notes hides it until it is created again, as mv from another file
	// system does; the stored notes stay until then.
	out = mustSh(t, dir, "cd "+snap+" && rm notes && ls -A && test ! -e notes && echo again > notes && cat notes && ls -A")
	if want := "manifest.json\nagain\nmanifest.json\nnotes\n"; out != want {
		t.Errorf("rm notes, create again: %q, want %q", out, want)
	}
	if got := e.snapNotes(vm100, tFirst); got != "again\n" {
		t.Errorf("notes after rm and create %q", got)
	}
	mustSh(t, dir, "rmdir vm/100/"+tSecond)
	if _, err := os.Stat(filepath.Join(e.base, "vm/100", tSecond)); !os.IsNotExist(err) {
		t.Errorf("removed snapshot still in the datastore: %v", err)
	}
	if got := mustSh(t, dir, "ls vm/100"); strings.Contains(got, tSecond) {
		t.Errorf("removed snapshot still listed: %q", got)
	}
	if got := mustSh(t, dir, "df -P . | tail -1"); !strings.Contains(got, "pbsfs") {
		t.Errorf("df: %q", got)
	}
}

// The editor and shell matrix: each step edits the notes of one snapshot
// through the mount and the datastore must hold the expected text after it.
func TestMountEditors(t *testing.T) {
	e := newEnv(t)
	dir := mountEnv(t, e)
	snap := "vm/100/" + tFirst
	have := func(tool, script string) bool {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not installed; skipping %q", tool, script)
			return false
		}
		return true
	}
	steps := []struct {
		tool, script, want string
	}{
		{"sh", "echo one > notes", "one\n"},
		{"sh", "echo two >> notes", "one\ntwo\n"},
		{"sh", "printf 'ü✓' >> notes", "one\ntwo\nü✓"},
		{"truncate", "truncate -s 4 notes", "one\n"},
		{"truncate", "truncate -s 0 notes", ""},
		{"sh", "printf 'a\\nb\\n' > src && cp src notes && rm src", "a\nb\n"},
		{"sed", "sed -i 's/a/A/' notes", "A\nb\n"},
		{"vim", "vim -u NONE -i NONE -N -es -c '%s/b/B/' -c 'wq' notes", "A\nB\n"},
		{"vim", "vim -u NONE -i NONE -N -es -c 'set backupcopy=yes' -c '$s/$/\\ryes/' -c 'wq' notes", "A\nB\nyes\n"},
		{"vim", "vim -u NONE -i NONE -N -es -c 'set backupcopy=no' -c '$s/$/\\rno/' -c 'wq' notes", "A\nB\nyes\nno\n"},
		{"vim", "vim -u NONE -i NONE -N -es -c 'set backup' -c '1d' -c 'wq' notes", "B\nyes\nno\n"},
		{"emacs", `emacs -Q --batch notes --eval '(progn (goto-char (point-max)) (insert "emacs\n") (save-buffer))'`, "B\nyes\nno\nemacs\n"},
		{"emacs", `emacs -Q --batch notes --eval '(progn (setq backup-by-copying t) (goto-char (point-min)) (insert "top\n") (save-buffer))'`, "top\nB\nyes\nno\nemacs\n"},
		{"perl", `perl -pi -e 's/top/TOP/' notes`, "TOP\nB\nyes\nno\nemacs\n"},
	}
	sdir := filepath.Join(dir, snap)
	for _, s := range steps {
		if !have(s.tool, s.script) {
			continue
		}
		out, err := sh(t, sdir, s.script)
		if err != nil {
			t.Errorf("%s: %v\n%s", s.script, err, out)
			continue
		}
		got := e.snapNotes(vm100, tFirst)
		if got != s.want {
			t.Errorf("%s: notes %q, want %q", s.script, got, s.want)
			continue
		}
		if rd := mustSh(t, sdir, "cat notes"); rd != s.want {
			t.Errorf("%s: read back %q, want %q", s.script, rd, s.want)
		}
	}
	// Editors leave nothing behind (swap files, backups, locks).
	if got := mustSh(t, sdir, "ls -A"); got != "manifest.json\nnotes\n" {
		t.Errorf("left behind: %q", got)
	}
	// Group notes go through the same code.
	mustSh(t, filepath.Join(dir, "vm/100"), "echo 'group v2' > notes")
	if data, _ := os.ReadFile(filepath.Join(e.base, "vm/100/notes")); string(data) != "group v2\n" {
		t.Errorf("group notes on disk %q", data)
	}
}

func TestMountReadOnly(t *testing.T) {
	e := newEnv(t, readOnly)
	dir := mountEnv(t, e)
	snap := "vm/100/" + tFirst
	if got := mustSh(t, dir, "cat "+snap+"/notes"); got != firstNotes {
		t.Errorf("cat: %q", got)
	}
	for _, script := range []string{"echo x > " + snap + "/notes", "truncate -s0 " + snap + "/notes",
		"rmdir " + snap, "touch " + snap + "/x"} {
		if out, err := sh(t, dir, script); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Errorf("%s: %v %q", script, err, out)
		}
	}
	if got := mustSh(t, dir, "stat -c %a "+snap+"/notes "+snap); got != "444\n555\n" {
		t.Errorf("modes %q", got)
	}
}
