package integration

// Editor-proof notes: the real editors and tools people use, driven against
// a real mount, each saving snapshot notes and group notes twice, checked
// against the datastore decoded independently (editors_helpers_test.go).
//
// Two editor defaults would hide what happens on a real mount, because the
// tests' mountpoints live under /tmp: vim's 'backupskip' and Emacs's
// backup-enable-predicate both exempt /tmp from backups. The tests turn
// these exemptions off, so the editors make their "notes~" backups in the
// mount as they do on a mount anywhere else (/mnt/pbs).

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// editTexts are the notes saved by the first and the second save: multi-line,
// an empty line, non-ASCII of several scripts and a 4-byte character. Each
// ends with a newline, as editors write them.
var editTexts = []string{
	"Gespeichert im Editor: Ünïcödé ✓ 日本語 🔐\nzweite Zeile — «Anführungszeichen»\n\nletzte Zeile\n",
	"second save: Ελληνικά, 数据库, ß\n",
}

// editCtx is one save of one editor case.
type editCtx struct {
	e     *editorEnv
	m     *mount
	tg    editTarget
	dir   string // the target directory in the mount
	old   string // the notes before the save
	round int
}

// editorCase saves text as the notes in c.dir and returns the notes the
// save must leave and the scratch files it leaves in the directory.
type editorCase struct {
	name  string
	tools []string
	save  func(t *testing.T, c *editCtx, text string) (want string, leftovers []string)
}

// vimEx is vim in silent Ex mode replacing the buffer with text and saving
// with :wq, with the given 'backupcopy': plain -Es (which reads no vimrc;
// HOME is empty anyway) or with -u NONE as well. Either way vim makes its
// swap file ".notes.swp" next to notes, probes with "4913" for 'backupcopy'
// auto, and backs up to "notes~" by rename (no, auto) or copy (yes).
func vimEx(noRC bool, backupcopy string) editorCase {
	name := "vim-Es"
	var pre []string
	if noRC {
		name, pre = "vim-u-NONE-Es", []string{"-u", "NONE"}
	}
	return editorCase{
		name:  name + "-backupcopy-" + backupcopy,
		tools: []string{"vim"},
		save: func(t *testing.T, c *editCtx, text string) (string, []string) {
			src := writeOutside(t, "text", text)
			args := append(slices.Clone(pre), "-Es",
				"--cmd", "set backupskip=",
				"-c", "set backupcopy="+backupcopy,
				"-c", "%d",
				"-c", fmt.Sprintf("call setline(1, readfile(%q))", src),
				"-c", "wq", "notes")
			c.e.mustRun(c.dir, nil, "vim", args...)
			return text, nil
		},
	}
}

// vimTmux is interactive vim with its defaults (defaults.vim, swap file in
// the file's directory) in a terminal. While it edits, its swap file must
// be in the mount and not in the datastore.
func vimTmux() editorCase {
	return editorCase{
		name:  "vim-interactive",
		tools: []string{"vim", "tmux"},
		save: func(t *testing.T, c *editCtx, text string) (string, []string) {
			src := writeOutside(t, "text", text)
			s := c.e.startTmux(c.dir, "vim --cmd 'set backupskip=' notes")
			s.waitScreen(`"notes"`)
			names, err := readNames(c.dir)
			if err != nil || !slices.Contains(names, ".notes.swp") {
				t.Errorf("while vim edits: %s lists %q (%v), want .notes.swp among them", c.dir, names, err)
			}
			if _, err := os.Lstat(filepath.Join(c.m.store, c.tg.rel, ".notes.swp")); err == nil {
				t.Errorf("vim's swap file reached the datastore")
			}
			s.text(":%d")
			s.keys("Enter")
			s.text(fmt.Sprintf(":call setline(1, readfile(%q))", src))
			s.keys("Enter")
			s.text(":wq")
			s.keys("Enter")
			if rc := s.wait(); rc != 0 {
				t.Errorf("vim exited with %d", rc)
			}
			return text, nil
		},
	}
}

// nanoTmux is nano in a terminal: cut everything, type the text, ^O Enter
// to write, ^X to leave.
func nanoTmux() editorCase {
	return editorCase{
		name:  "nano",
		tools: []string{"nano", "tmux"},
		save: func(t *testing.T, c *editCtx, text string) (string, []string) {
			s := c.e.startTmux(c.dir, "nano notes")
			s.waitScreen("GNU nano")
			s.keys(`M-\`, "M-t") // to the top, cut till the end
			for i, l := range editLines(text) {
				if i > 0 {
					s.keys("Enter")
				}
				if l != "" {
					s.text(l)
				}
			}
			s.keys("C-o")
			s.waitScreen("File Name to Write")
			s.keys("Enter")
			s.waitScreen("Wrote ")
			s.keys("C-x")
			if rc := s.wait(); rc != 0 {
				t.Errorf("nano exited with %d", rc)
			}
			return text, nil // nano ends the last line with a newline
		},
	}
}

// emacsBatch is Emacs visiting notes in batch mode, replacing the buffer
// and saving: the first save of a session backs notes up to "notes~" by
// renaming (the default) or by copying, and a lock symlink ".#notes"
// exists while the buffer is modified.
func emacsBatch(byCopying bool) editorCase {
	name, setup := "emacs", "(setq backup-enable-predicate (lambda (_) t))"
	if byCopying {
		name, setup = "emacs-backup-by-copying", "(setq backup-enable-predicate (lambda (_) t) backup-by-copying t)"
	}
	return editorCase{
		name:  name,
		tools: []string{"emacs"},
		save: func(t *testing.T, c *editCtx, text string) (string, []string) {
			src := writeOutside(t, "text", text)
			c.e.mustRun(c.dir, nil, "emacs", "--batch", "--eval", setup, "notes", "--eval",
				fmt.Sprintf("(progn (erase-buffer) (insert-file-contents %q) (save-buffer))", src))
			return text, []string{"notes~"}
		},
	}
}

// shellCase runs a shell script in the mount directory. What it must leave
// is what the same script leaves in a local directory whose notes hold the
// same old text. The script sees TEXT (the text to save), LINE (its first
// line), SRC (a fresh file outside the mount holding TEXT) and ROUND.
func shellCase(name, script string, leftovers ...string) editorCase {
	return editorCase{
		name:  name,
		tools: []string{"sh"},
		save: func(t *testing.T, c *editCtx, text string) (string, []string) {
			env := func() []string {
				return []string{"TEXT=" + text, "LINE=" + editLines(text)[0], "ROUND=" + fmt.Sprint(c.round),
					"SRC=" + writeOutside(t, "src", text)}
			}
			local := t.TempDir()
			if err := os.WriteFile(filepath.Join(local, "notes"), []byte(c.old), 0o644); err != nil {
				t.Fatal(err)
			}
			c.e.mustRun(local, env(), "sh", "-c", script)
			want, err := os.ReadFile(filepath.Join(local, "notes"))
			if err != nil {
				t.Fatal(err)
			}
			c.e.mustRun(c.dir, env(), "sh", "-c", script)
			return string(want), leftovers
		},
	}
}

func editorCases() []editorCase {
	var cs []editorCase
	for _, noRC := range []bool{false, true} {
		for _, bc := range []string{"yes", "no", "auto"} {
			cs = append(cs, vimEx(noRC, bc))
		}
	}
	cs = append(cs, vimTmux(), nanoTmux(), emacsBatch(false), emacsBatch(true),
		shellCase("sed-i", `sed -i -e '1s/^/[sed ✓] /' -e 's/e/€/g' notes`),
		shellCase("perl-pi", `perl -pi -e 's/^/» /; s/a/ä/g' notes`),
		shellCase("perl-pi-bak", `perl -pi.bak -e 's/$/ ¶/' notes`, "notes.bak"),
		shellCase("echo-redirect", `echo "$TEXT" > notes`),
		shellCase("echo-append", `echo "$LINE" >> notes`),
		shellCase("truncate", `if [ "$ROUND" = 0 ]; then truncate -s 0 notes; else printf '%s' "$TEXT" > notes && truncate -s 7 notes; fi`),
		shellCase("cp", `cp "$SRC" notes`),
		shellCase("mv-from-outside", `mv "$SRC" notes`),
		shellCase("mv-scratch", `printf '%s' "$TEXT" > .notes.new && mv .notes.new notes`),
		shellCase("tee", `printf '%s' "$TEXT" | tee notes >/dev/null`),
	)
	return cs
}

// TestEditorSaves saves snapshot notes, group notes and new group notes
// twice with every editor case, each case on its own store and mount.
func TestEditorSaves(t *testing.T) {
	t.Parallel()
	for _, ec := range editorCases() {
		t.Run(ec.name, func(t *testing.T) {
			t.Parallel()
			requireEditorTools(t, ec.tools...)
			store := newStore(t)
			chownEditTargets(t, store)
			m := startMount(t, store)
			e := newEditorEnv(t)
			for _, tg := range editTargets {
				st := captureEditState(t, store, tg)
				for round, text := range editTexts {
					c := &editCtx{e: e, m: m, tg: tg, dir: m.path(tg.rel), old: tg.storedNotes(t, store), round: round}
					want, leftovers := ec.save(t, c, text)
					st.checkSaved(t, m, fmt.Sprintf("%s, %s notes, save %d", ec.name, tg.name, round+1), want, leftovers...)
				}
			}
		})
	}
}

// TestEditorExternalChange: when PBS (here: the datastore package in this
// process) changes the notes, the mount shows a new mtime within about a
// few seconds — the revalidator's interval — even when the size stays the same, so that
// editors notice ("changed since reading it") instead of overwriting.
func TestEditorExternalChange(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	ds := openEditStore(m)
	for _, tg := range editTargets {
		p := m.path(tg.rel, "notes")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		old := tg.storedNotes(t, store)
		text := sameLengthText(old)
		time.Sleep(1100 * time.Millisecond) // a new second, for tools that compare seconds
		setNotesOutside(t, ds, tg, text)
		deadline := time.Now().Add(changeVisible())
		for {
			now, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !now.ModTime().Equal(fi.ModTime()) {
				if now.Size() != int64(len(text)) {
					t.Errorf("%s: size %d after the change, want %d", tg.name, now.Size(), len(text))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: mtime through the mount still %v %v after the notes were changed outside", tg.name, fi.ModTime(), changeVisible())
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != text {
			t.Errorf("%s: notes read through the mount %q, %v; want %q", tg.name, got, err, text)
		}
		// Once changed, the mtime stays put: an editor that records it
		// after reloading must not be told of another change.
		seen, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			now, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !now.ModTime().Equal(seen.ModTime()) || now.Size() != seen.Size() {
				t.Errorf("%s: mtime/size went from %v/%d to %v/%d with no change", tg.name, seen.ModTime(), seen.Size(), now.ModTime(), now.Size())
				break
			}
		}
	}
}

// sameLengthText returns a text as long as s (in bytes) that differs from it.
func sameLengthText(s string) string {
	if s == "" {
		return "x"
	}
	b := []byte(strings.Repeat("y", len(s)))
	if string(b) == s {
		b[0] = 'z'
	}
	return string(b)
}

// TestEditorVimReload: interactive vim with default settings warns that the
// notes changed outside (W11) after PBS changed them to a text of the same
// size, and "(L)oad File" then shows the new text.
func TestEditorVimReload(t *testing.T) {
	t.Parallel()
	requireEditorTools(t, "vim", "tmux")
	store := newStore(t)
	m := startMount(t, store)
	ds := openEditStore(m)
	e := newEditorEnv(t)
	for _, tg := range editTargets[:2] {
		out := filepath.Join(t.TempDir(), "buffer")
		s := e.startTmux(m.path(tg.rel), "vim notes")
		s.waitScreen(`"notes"`)
		text := sameLengthText(strings.TrimSuffix(tg.storedNotes(t, store), "\n")) + "\n"
		time.Sleep(1100 * time.Millisecond)
		before, err := os.Stat(filepath.Join(m.path(tg.rel), "notes"))
		if err != nil {
			t.Fatal(err)
		}
		setNotesOutside(t, ds, tg, text)
		waitMtimeChange(t, filepath.Join(m.path(tg.rel), "notes"), before.ModTime())
		s.text(":checktime")
		s.keys("Enter")
		s.waitScreen("W11")
		s.keys("L")
		s.waitScreen(`"notes" 1L`) // reloaded
		s.text(fmt.Sprintf(":call writefile(getline(1, '$'), %q)", out))
		s.keys("Enter")
		s.text(":qa!")
		s.keys("Enter")
		if rc := s.wait(); rc != 0 {
			t.Errorf("%s: vim exited with %d", tg.name, rc)
		}
		got, err := os.ReadFile(out)
		if err != nil || string(got) != text {
			t.Errorf("%s: vim's buffer after reloading %q, %v; want %q", tg.name, got, err, text)
		}
		if got := tg.storedNotes(t, store); got != text {
			t.Errorf("%s: notes in the datastore %q, want %q", tg.name, got, text)
		}
	}
}

// TestEditorScratchFiles works the scratch files of a snapshot and a group
// directory with plain system calls — create, write, read, chmod, fsync,
// symlink, readlink, rename, unlink — and checks that none of it reaches
// the datastore, that renaming notes away leaves notes readable with the
// old text, and that renaming a scratch file onto notes commits it.
func TestEditorScratchFiles(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	for _, tg := range editTargets {
		st := captureEditState(t, store, tg)
		dir := m.path(tg.rel)
		old := tg.storedNotes(t, store)
		what := tg.name

		// A scratch file: create, write, read, chmod, fsync, rename.
		f, err := os.OpenFile(filepath.Join(dir, "4913"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatalf("%s: create: %v", what, err)
		}
		if _, err := f.WriteString("scratch ✓\n"); err != nil {
			t.Errorf("%s: write: %v", what, err)
		}
		if err := f.Chmod(0o640); err != nil {
			t.Errorf("%s: fchmod: %v", what, err)
		}
		if err := f.Sync(); err != nil {
			t.Errorf("%s: fsync: %v", what, err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("%s: close: %v", what, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "4913")); err != nil || fi.Mode().Perm() != 0o640 || fi.Size() != int64(len("scratch ✓\n")) {
			t.Errorf("%s: stat scratch file: %v %v", what, fi, err)
		}
		if err := os.Rename(filepath.Join(dir, "4913"), filepath.Join(dir, "4913.renamed")); err != nil {
			t.Errorf("%s: rename scratch: %v", what, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "4913.renamed")); err != nil || string(b) != "scratch ✓\n" {
			t.Errorf("%s: read renamed scratch: %q, %v", what, b, err)
		}
		// A lock symlink as Emacs makes it.
		if err := os.Symlink("root@host.123:456", filepath.Join(dir, ".#notes")); err != nil {
			t.Errorf("%s: symlink: %v", what, err)
		}
		if target, err := os.Readlink(filepath.Join(dir, ".#notes")); err != nil || target != "root@host.123:456" {
			t.Errorf("%s: readlink: %q, %v", what, target, err)
		}
		if err := os.Symlink("x", filepath.Join(dir, ".#notes")); !os.IsExist(err) {
			t.Errorf("%s: second symlink: %v, want EEXIST", what, err)
		}
		for _, n := range []string{".#notes", "4913.renamed"} {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				t.Errorf("%s: unlink %s: %v", what, n, err)
			}
		}
		st.checkSaved(t, m, what+": scratch files", old)

		// A backup by rename: notes stays, readable, with the old text,
		// until the new text is renamed onto it.
		if err := os.Rename(filepath.Join(dir, "notes"), filepath.Join(dir, "notes~")); err != nil {
			t.Fatalf("%s: rename notes away: %v", what, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "notes")); err != nil || string(b) != old {
			t.Errorf("%s: notes after renaming it away: %q, %v; want %q", what, b, err, old)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "notes~")); err != nil || string(b) != old {
			t.Errorf("%s: the backup: %q, %v; want %q", what, b, err, old)
		}
		st.checkSaved(t, m, what+": notes renamed away", old, "notes~")
		text := editTexts[0]
		if err := os.WriteFile(filepath.Join(dir, ".notes.tmp"), []byte(text), 0o644); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := os.Rename(filepath.Join(dir, ".notes.tmp"), filepath.Join(dir, "notes")); err != nil {
			t.Fatalf("%s: rename onto notes: %v", what, err)
		}
		st.checkSaved(t, m, what+": renamed onto notes", text, "notes~")
		if b, err := os.ReadFile(filepath.Join(dir, "notes~")); err != nil || string(b) != old {
			t.Errorf("%s: the backup after the commit: %q, %v; want %q", what, b, err, old)
		}
		if err := os.Remove(filepath.Join(dir, "notes~")); err != nil {
			t.Errorf("%s: remove the backup: %v", what, err)
		}
		st.checkSaved(t, m, what+": backup removed", text)

		// rm notes hides it, changing nothing stored, until it is created
		// again (mv from another file system does both).
		if err := os.Remove(filepath.Join(dir, "notes")); err != nil {
			t.Fatalf("%s: rm notes: %v", what, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "notes")); !os.IsNotExist(err) {
			t.Errorf("%s: stat notes after rm: %v, want ENOENT", what, err)
		}
		if names, err := readNames(dir); err != nil || slices.Contains(names, "notes") {
			t.Errorf("%s: listing after rm notes: %q, %v", what, names, err)
		}
		if got := tg.storedNotes(t, store); got != text {
			t.Errorf("%s: stored notes after rm notes %q, want %q", what, got, text)
		}
		f, err = os.OpenFile(filepath.Join(dir, "notes"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("%s: create notes again: %v", what, err)
		}
		if _, err := f.WriteString(editTexts[1]); err != nil {
			t.Errorf("%s: write: %v", what, err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("%s: close: %v", what, err)
		}
		st.checkSaved(t, m, what+": notes removed and created again", editTexts[1])
	}
}

// waitMtimeChange waits until the mount shows an mtime of p other than old
// (the revalidator notices a change PBS made within its interval).
func waitMtimeChange(t *testing.T, p string, old time.Time) {
	t.Helper()
	deadline := time.Now().Add(changeVisible())
	for {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(old) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: mtime still %v through the mount", p, old)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
