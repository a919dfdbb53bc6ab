package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The notes write session against real programs on a real mount: the
// shell's redirections through a real bash (fs/README.md, "Writing notes":
// a truncation nothing was written after is not committed at a close, a
// refused text changes nothing, what a command wrote is saved as on a local
// disk), and a program that keeps writing through a descriptor after
// renaming its file onto notes.

// bash runs script with bash (not sh: the cases are bash's own behaviour)
// in dir, with env added, and returns its combined output and error.
func bash(t *testing.T, dir string, env []string, script string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("bash: %v", err)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestShellRedirections runs each case in a group directory (the group
// notes are a plain file in the store, which the scripts read in between
// through $STORED) and in a snapshot directory (notes in the manifest),
// starting from "old\n", and checks what the store holds afterwards (the
// commit of a bare truncation comes with the RELEASE, which the kernel
// sends after close(2) returned, so the checks wait for it).
func TestShellRedirections(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	const old = "old\n"
	tmp := t.TempDir()
	cases := []struct {
		name, script, want string
		fails              bool   // bash exits non-zero
		during             string // what $DURING must hold (the stored text mid-way)
	}{
		// Refused texts change nothing (issue 14, item 4): the first
		// close is bash's close of the opened descriptor after dup2.
		{name: "builtin printf of invalid UTF-8", script: `printf '\xff\xfe' > notes`, want: old},
		// coreutils checks its close of stdout and reports the EILSEQ.
		{name: "external printf of invalid UTF-8", script: `/usr/bin/printf '\xff\xfe' > notes`, want: old, fails: true},
		{name: "group command failing half way", script: `{ echo good; printf '\xff'; } > notes`, want: old},
		// A refused text does not linger for another writer (item 6).
		{name: "refused append beside an open descriptor", script: `exec 3>> notes; printf '\xff' >> notes; echo good >&3; exec 3>&-`, want: old + "good\n"},
		// Clearing.
		{name: ": >", script: `: > notes`, want: ""},
		{name: "echo -n >", script: `echo -n > notes`, want: ""},
		{name: "truncate -s 0", script: `truncate -s 0 notes`, want: ""},
		{name: "command not found", script: `no-such-command-pbsfs > notes`, want: "", fails: true},
		// Writing.
		{name: ">", script: `echo new > notes`, want: "new\n"},
		{name: ">>", script: `echo more >> notes`, want: old + "more\n"},
		{name: "group command", script: `{ echo a; echo b; } > notes`, want: "a\nb\n"},
		{name: "subshell with a child process", script: `( echo a; /bin/echo b ) > notes`, want: "a\nb\n"},
		{name: "command failing half way", script: `bash -c 'echo part; exit 3' > notes`, want: "part\n", fails: true},
		{
			name:   "exec 3>",
			script: `exec 3> notes; cat "$STORED" > "$DURING"; echo a >&3; echo b >&3; exec 3>&-`,
			want:   "a\nb\n", during: old,
		},
		{
			name:   "exec 3> and a write",
			script: `exec 3> notes; echo a >&3; cat "$STORED" > "$DURING"; exec 3>&-`,
			want:   "a\n", during: "a\n",
		},
		{name: "exec 3>>", script: `exec 3>> notes; echo a >&3; exec 3>&-`, want: old + "a\n"},
	}
	targets := []editTarget{{name: "group", rel: "vm/100"}, {name: "snapshot", rel: "vm/100/2024-06-01T02:00:04Z", snap: true}}
	for _, tg := range targets {
		dir := m.path(tg.rel)
		for _, c := range cases {
			what := tg.name + ": " + c.name
			mustSh(t, dir, "printf 'old\\n' > notes")
			eventually(t, what+": the starting text", func() (bool, string) {
				got := tg.storedNotes(t, store)
				return got == old, "stored " + got
			})
			if c.during != "" && tg.snap {
				continue // $STORED is a manifest: these run for the group
			}
			during := filepath.Join(tmp, "during")
			os.Remove(during)
			env := []string{"STORED=" + tg.storedFile(store), "DURING=" + during}
			out, err := bash(t, dir, env, c.script)
			if (err != nil) != c.fails {
				t.Errorf("%s: %v\n%s", what, err, out)
			}
			eventually(t, what, func() (bool, string) {
				got := tg.storedNotes(t, store)
				return got == c.want, "stored " + got + ", want " + c.want
			})
			if c.during != "" {
				if got, err := os.ReadFile(during); err != nil || string(got) != c.during {
					t.Errorf("%s: stored while the descriptor was open: %q (%v), want %q", what, got, err, c.during)
				}
			}
			if got, err := os.ReadFile(filepath.Join(dir, "notes")); err != nil || string(got) != c.want {
				t.Errorf("%s: the mount shows %q (%v), want %q", what, got, err, c.want)
			}
		}
	}
}

// TestWriteAfterRenameOntoNotes (issue 14, item 5): a real program writes a
// temp file, renames it onto notes and keeps writing through the same
// descriptor, then fsyncs and closes it; the notes end as everything it
// wrote.
func TestWriteAfterRenameOntoNotes(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Fatalf("perl: %v", err)
	}
	store := newStore(t)
	m := startMount(t, store)
	const prog = `use strict; use Fcntl; use IO::Handle;
sysopen(my $fh, "notes.tmp", O_WRONLY|O_CREAT|O_EXCL, 0644) or die "open: $!\n";
defined(syswrite($fh, "first part ")) or die "write: $!\n";
rename("notes.tmp", "notes") or die "rename: $!\n";
defined(syswrite($fh, "second part")) or die "write after the rename: $!\n";
$fh->sync or die "fsync: $!\n";
close($fh) or die "close: $!\n";
`
	const want = "first part second part"
	for _, tg := range []editTarget{{name: "snapshot", rel: "vm/100/2024-06-01T02:00:04Z", snap: true}, {name: "group", rel: "vm/100"}} {
		dir := m.path(tg.rel)
		cmd := exec.Command("perl", "-e", prog)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", tg.name, err, out)
		}
		// fsync committed: no waiting.
		if got := tg.storedNotes(t, store); got != want {
			t.Errorf("%s: stored %q, want %q", tg.name, got, want)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "notes")); err != nil || string(got) != want {
			t.Errorf("%s: the mount shows %q (%v)", tg.name, got, err)
		}
		names, err := readNames(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n == "notes.tmp" {
				t.Errorf("%s: notes.tmp left behind: %q", tg.name, names)
			}
		}
	}
}
