package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbsfs/internal/testsupport"
	"pbsfs/manifest"
)

// startMountAs is startMount with the pbsfs command run through a wrapper
// (setpriv, to drop capabilities) on the given mountpoint directory.
func startMountAs(t *testing.T, store, mnt string, wrapper []string, extra ...string) *mount {
	t.Helper()
	requireFUSE(t)
	m := &mount{
		t:       t,
		store:   store,
		dir:     mnt,
		lockDir: filepath.Join(t.TempDir(), "locks"),
		stderr:  &syncBuffer{},
		done:    make(chan struct{}),
	}
	args := append([]string{}, wrapper[1:]...)
	args = append(args, pbsfsBin, "mount", "--lock-scheme", "run", "--lock-dir", m.lockDir, "--store", storeName, "-v")
	args = append(args, extra...)
	args = append(args, store, m.dir)
	m.run(exec.Command(wrapper[0], args...))
	return m
}

// waitLogged waits until pbsfs's log mentions s (log lines are written by
// the serving process after it answered), failing after mountTimeout.
func waitLogged(t *testing.T, m *mount, s string) {
	t.Helper()
	deadline := time.Now().Add(mountTimeout)
	for !strings.Contains(m.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Errorf("pbsfs's log does not name %s:\n%s", s, m.stderr)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCorruptStore plants every kind of damage in a datastore — a manifest
// with a bad CRC, a wrong magic, cut short (inside the payload and inside
// the header), with invalid JSON, with valid JSON that is no manifest,
// empty, a directory or a FIFO where index.json.blob belongs; group notes
// that are a directory or a FIFO; an owner that is a directory — and
// checks through the mount that each affected file gives EIO (stat, read
// and write alike) with a log line naming it, that nothing affected is
// rewritten, that nothing blocks, and that everything else (listings,
// every other file, writing notes) keeps working.
func TestCorruptStore(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	group := filepath.Join(store, "vm/100")
	good, err := os.ReadFile(filepath.Join(group, "2024-06-01T02:00:04Z", "index.json.blob"))
	if err != nil {
		t.Fatal(err)
	}
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-3] ^= 0x5a
	wrongMagic := bytes.Clone(good)
	copy(wrongMagic, []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08})
	notJSON, err := manifest.EncodeBlob([]byte(`{"backup-type": "vm", "files": [`), true)
	if err != nil {
		t.Fatal(err)
	}
	notManifest, err := manifest.EncodeBlob([]byte(`{"hello": "world"}`), false)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{ // snapshot -> index.json.blob content
		"2024-07-01T00:00:01Z": badCRC,
		"2024-07-01T00:00:02Z": wrongMagic,
		"2024-07-01T00:00:03Z": good[:len(good)/2],
		"2024-07-01T00:00:04Z": good[:6],
		"2024-07-01T00:00:05Z": notJSON,
		"2024-07-01T00:00:06Z": notManifest,
		"2024-07-01T00:00:07Z": {},
	}
	var broken []string // files (store-relative) that must give EIO
	for name, raw := range blobs {
		if err := os.Mkdir(filepath.Join(group, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(group, name, "index.json.blob"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		broken = append(broken, "vm/100/"+name+"/index.json.blob")
	}
	for name, mk := range map[string]func(p string) error{
		"2024-07-01T00:00:08Z": func(p string) error { return os.Mkdir(p, 0o755) },
		"2024-07-01T00:00:09Z": func(p string) error { return syscall.Mkfifo(p, 0o644) },
	} {
		if err := os.Mkdir(filepath.Join(group, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := mk(filepath.Join(group, name, "index.json.blob")); err != nil {
			t.Fatal(err)
		}
		broken = append(broken, "vm/100/"+name+"/index.json.blob")
	}
	// Group-level damage.
	mustSh(t, store, `mkdir -p vm/900 vm/901 vm/902 &&
		echo root@pam > vm/900/owner && mkdir vm/900/notes &&
		echo root@pam > vm/901/owner && mkfifo vm/901/notes &&
		mkdir vm/902/owner`)
	broken = append(broken, "vm/900/notes", "vm/901/notes", "vm/902/owner")
	before := treeDigest(t, store)

	m := startMount(t, store)

	// Listings are whole.
	for dir, want := range expectedTree(t, store) {
		if got, err := readNames(m.path(dir)); err != nil || !equalStrings(got, want) {
			t.Errorf("ls %q = %q, %v; want %q", dir, got, err, want)
		}
	}
	// Every broken file: EIO for stat, read and write, and a log line.
	for _, rel := range broken {
		var files []string
		if filepath.Base(rel) == "index.json.blob" {
			snap := filepath.Dir(rel)
			files = []string{snap + "/notes", snap + "/manifest.json"}
		} else {
			files = []string{rel}
		}
		for _, f := range files {
			_, err := os.Stat(m.path(f))
			wantErrno(t, "stat "+f, err, syscall.EIO)
			_, err = os.ReadFile(m.path(f))
			wantErrno(t, "read "+f, err, syscall.EIO)
			if filepath.Base(f) == "notes" {
				err = os.WriteFile(m.path(f), []byte("overwritten\n"), 0o644)
				wantErrno(t, "write "+f, err, syscall.EIO)
				f2, err := os.OpenFile(m.path(f), os.O_WRONLY|os.O_APPEND, 0)
				if err == nil {
					f2.Close()
				}
				wantErrno(t, "open for append "+f, err, syscall.EIO)
			}
		}
		waitLogged(t, m, filepath.Join(store, rel))
	}

	// Everything else reads as the model says, and takes notes.
	isBroken := func(rel string) bool {
		for _, b := range broken {
			if rel == b || (filepath.Base(b) == "index.json.blob" && strings.HasPrefix(rel, filepath.Dir(b)+"/")) {
				return true
			}
		}
		return false
	}
	checked := 0
	for dir, names := range expectedTree(t, store) {
		for _, n := range names {
			rel := filepath.Join(dir, n)
			if classify(rel) != lvFile || isBroken(rel) {
				continue
			}
			checkFile(t, m, store, rel)
			checked++
		}
	}
	t.Logf("%d broken files gave EIO; %d other files read fine", len(broken), checked)
	mustSh(t, m.path("vm/100/2024-06-03T02:00:05Z"), "echo still writable > notes")
	mustSh(t, m.path("vm/900"), "cat owner >/dev/null")
	m.stop()

	// Nothing broken was touched; only the one notes write changed a file.
	after := treeDigest(t, store)
	for _, p := range []string{"vm/100/2024-06-03T02:00:05Z", "vm/100/2024-06-03T02:00:05Z/index.json.blob"} {
		delete(before, p)
		delete(after, p)
	}
	diffDigests(t, before, after)
}

// TestUnreadableManifest: a manifest pbsfs may not read (mode 000; pbsfs
// runs as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, through
// setpriv, since root reads anything otherwise). Its notes and
// manifest.json fail with EIO or EACCES (fs passes EACCES through, see the
// errno table in fs/README.md), with a log line naming the file; the
// sibling snapshots keep working.
func TestUnreadableManifest(t *testing.T) {
	t.Parallel()
	testsupport.RequireRoot(t, "drop capabilities with setpriv")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setpriv (util-linux) not found — CI=true, so this test must not be skipped")
		}
		t.Skip("setpriv (util-linux) not found")
	}
	store := newStore(t)
	const snap = "vm/100/2024-06-01T02:00:04Z"
	blob := filepath.Join(store, snap, "index.json.blob")
	if err := os.Chmod(blob, 0); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMountAs(t, store, mnt, []string{setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"})
	for _, f := range []string{"notes", "manifest.json"} {
		_, err := os.ReadFile(m.path(snap, f))
		wantErrno(t, "read "+f+" of an unreadable manifest", err, syscall.EIO, syscall.EACCES)
	}
	waitLogged(t, m, blob)
	for _, rel := range []string{"vm/100/2024-06-03T02:00:05Z/notes", "vm/100/2024-06-03T02:00:05Z/manifest.json", "vm/100/notes", "vm/100/owner"} {
		got, err := os.ReadFile(m.path(rel))
		if err != nil || !bytes.Equal(got, expectedContent(t, store, rel)) {
			t.Errorf("read %s: %.60q, %v", rel, got, err)
		}
	}
	m.stop()
	if fi, err := os.Stat(blob); err != nil || fi.Mode().Perm() != 0 {
		t.Errorf("unreadable manifest changed: %v %v", fi.Mode(), err)
	}
}
