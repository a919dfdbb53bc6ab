package integration

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"pbsfs/manifest"
)

// TestContainment plants symlinks in the datastore that point out of it —
// a group directory, a snapshot directory, a namespace, a namespace's ns
// directory, a backup-type directory, an index.json.blob, group notes, an
// owner file — plus a manifest hard-linked to a file outside, and then
// browses and tries to write through every one of them. Nothing outside
// the store may be read (no outside content ever shows) or changed (the
// outside tree is byte-identical afterwards, mtimes included); symlinked
// directories are hidden, symlinked files fail. ".." and odd names never
// lead out of the mount, and the mount shows nothing of .chunks, .lock,
// .gc-status, lock files (the legacy scheme keeps them in the snapshot
// directory) or pbsfs's temp files.
func TestContainment(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	outside := filepath.Join(t.TempDir(), "outside")
	const secret = "OUTSIDE SECRET"
	good := filepath.Join(store, "vm/100/2024-06-01T02:00:04Z/index.json.blob")
	mustSh(t, filepath.Dir(outside), `mkdir -p outside/group/2024-01-01T00:00:00Z outside/ns/vm/700/2024-01-01T00:00:00Z outside/hosttype/h1/2024-01-01T00:00:00Z &&
		cp '`+good+`' outside/group/2024-01-01T00:00:00Z/index.json.blob &&
		cp '`+good+`' outside/ns/vm/700/2024-01-01T00:00:00Z/index.json.blob &&
		cp '`+good+`' outside/hosttype/h1/2024-01-01T00:00:00Z/index.json.blob &&
		cp '`+good+`' outside/secret.blob &&
		echo '`+secret+`' > outside/group/notes && echo '`+secret+`' > outside/group/owner &&
		echo '`+secret+`' > outside/notes.txt && echo '`+secret+`' > outside/owner.txt &&
		cp '`+good+`' outside/hardlinked.blob`)
	// The outside manifests carry the secret as their notes, so that any
	// read through a followed link would show it.
	for _, p := range []string{"group/2024-01-01T00:00:00Z/index.json.blob", "ns/vm/700/2024-01-01T00:00:00Z/index.json.blob",
		"hosttype/h1/2024-01-01T00:00:00Z/index.json.blob", "secret.blob"} {
		setBlobNotes(t, filepath.Join(outside, p), secret+"\n")
	}
	// A hard link is the store's file as much as the outside one's: it is
	// read, but a write must not change the outside name's content.
	const shared = "shared by a hard link\n"
	setBlobNotes(t, filepath.Join(outside, "hardlinked.blob"), shared)
	plant := map[string]string{ // store-relative symlink -> target
		"vm/666":                      outside + "/group",
		"vm/100/2031-01-01T00:00:00Z": outside + "/group/2024-01-01T00:00:00Z",
		"ns/evil":                     outside + "/ns",
		"ns/prod/ns/db/ns":            outside,
		"ns/prod/ns/db/host":          outside + "/hosttype",
		"ct/200/notes":                outside + "/notes.txt",
		"vm/101/owner":                outside + "/owner.txt",
		"vm/100/2030-01-01T00:00:00Z/index.json.blob": outside + "/secret.blob",
	}
	if err := os.Mkdir(filepath.Join(store, "vm/100/2030-01-01T00:00:00Z"), 0o755); err != nil {
		t.Fatal(err)
	}
	for rel, target := range plant {
		p := filepath.Join(store, rel)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	// A manifest that is a hard link to a file outside.
	hard := filepath.Join(store, "vm/100/2024-06-02T02:00:03Z/index.json.blob")
	if err := os.Remove(hard); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(outside, "hardlinked.blob"), hard); err != nil {
		t.Fatal(err)
	}
	outsideBefore := treeDigest(t, outside)
	const lckSnap = "vm/100/2024-06-03T02:00:05Z"

	m := startMount(t, store, "--lock-scheme", "legacy")

	// 1. Browse everything: no outside content, no hidden store file.
	var seen []string
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(m.dir, p)
		if err != nil {
			// A symlinked manifest: its files fail (EIO); nothing else may.
			if !strings.HasPrefix(rel, "vm/100/2030-01-01T00:00:00Z") || !errors.Is(err, syscall.EIO) {
				t.Errorf("walk %s: %v", rel, err)
			}
			return nil
		}
		seen = append(seen, rel)
		if d.IsDir() && classify(rel) == lvArchive {
			return filepath.SkipDir // archived files, symlinks included: pxar_test.go
		}
		name := d.Name()
		if name == ".chunks" || name == ".lock" || name == ".gc-status" || name == ".index.json.lck" ||
			strings.HasPrefix(name, ".pbsfs-") || name == "index.json.blob" || strings.HasSuffix(name, ".fidx") || strings.HasSuffix(name, ".didx") {
			t.Errorf("the mount shows %s", rel)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("the mount shows a symlink: %s", rel)
		}
		if d.Type().IsRegular() {
			b, err := readHead(p, wholeFileLimit) // not all of the sparse disk images
			if err == nil && bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s shows content from outside the store", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"vm/666", "vm/100/2031-01-01T00:00:00Z", "ns/evil", "ns/prod/ns/db/ns", "ns/prod/ns/db/host"} {
		for _, s := range seen {
			if s == rel || strings.HasPrefix(s, rel+"/") {
				t.Errorf("symlinked directory %s is shown (%s)", rel, s)
				break
			}
		}
		_, err := os.Stat(m.path(rel))
		wantErrno(t, "stat symlinked directory "+rel, err, syscall.ENOENT)
	}
	for _, rel := range []string{"ct/200/notes", "vm/101/owner", "vm/100/2030-01-01T00:00:00Z/notes", "vm/100/2030-01-01T00:00:00Z/manifest.json"} {
		b, err := os.ReadFile(m.path(rel))
		if err == nil {
			t.Errorf("read %s through a symlink: %q", rel, b)
		}
	}
	// The hard-linked manifest is the store's file as far as reading goes.
	if b, err := os.ReadFile(m.path("vm/100/2024-06-02T02:00:03Z/notes")); err != nil || string(b) != shared {
		t.Errorf("hard-linked manifest: %q, %v", b, err)
	}

	// 2. Try to write through every one of them.
	writes := map[string]func() error{
		"notes in a symlinked group":      func() error { return os.WriteFile(m.path("vm/666/notes"), []byte("x"), 0o644) },
		"notes in a symlinked snapshot":   func() error { return os.WriteFile(m.path("vm/100/2031-01-01T00:00:00Z/notes"), []byte("x"), 0o644) },
		"notes of a symlinked manifest":   func() error { return os.WriteFile(m.path("vm/100/2030-01-01T00:00:00Z/notes"), []byte("x"), 0o644) },
		"append to a symlinked manifest":  func() error { return appendFile(m.path("vm/100/2030-01-01T00:00:00Z/notes"), "x") },
		"symlinked group notes":           func() error { return os.WriteFile(m.path("ct/200/notes"), []byte("x"), 0o644) },
		"append to symlinked group notes": func() error { return appendFile(m.path("ct/200/notes"), "x") },
		"truncate symlinked group notes":  func() error { return os.Truncate(m.path("ct/200/notes"), 0) },
		"rename onto symlinked notes": func() error {
			if err := os.WriteFile(m.path("ct/200/.notes.tmp"), []byte("x"), 0o644); err != nil {
				return err
			}
			return os.Rename(m.path("ct/200/.notes.tmp"), m.path("ct/200/notes"))
		},
		"notes in a symlinked namespace": func() error {
			return os.WriteFile(m.path("ns/evil/vm/700/2024-01-01T00:00:00Z/notes"), []byte("x"), 0o644)
		},
		"rmdir symlinked group":     func() error { return os.Remove(m.path("vm/666")) },
		"rmdir symlinked snapshot":  func() error { return os.Remove(m.path("vm/100/2031-01-01T00:00:00Z")) },
		"rmdir symlinked namespace": func() error { return os.Remove(m.path("ns/evil")) },
		"mkdir beside a symlink":    func() error { return os.Mkdir(m.path("vm/666x"), 0o755) },
	}
	for what, w := range writes {
		if err := w(); err == nil {
			t.Errorf("%s: succeeded", what)
		}
	}
	// A legacy manifest lock file planted as a symlink to a file outside:
	// pbsfs must not open (let alone lock) the target; the write fails.
	if err := os.Symlink(outside+"/owner.txt", filepath.Join(store, lckSnap, ".index.json.lck")); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(m.path(lckSnap, "notes"), []byte("x\n"), 0o644)
	wantErrno(t, "notes write under a lock file that is a symlink out of the store", err, syscall.EIO)
	waitLogged(t, m, filepath.Join(store, lckSnap, ".index.json.lck"))
	// The hard-linked manifest: a notes write replaces the store's link by
	// rename; the file outside keeps its content.
	if err := os.WriteFile(m.path("vm/100/2024-06-02T02:00:03Z/notes"), []byte("written through the mount\n"), 0o644); err != nil {
		t.Errorf("notes of the hard-linked manifest: %v", err)
	}
	if mm, _ := loadManifest(t, store, "vm/100/2024-06-02T02:00:03Z"); mm.Notes() != "written through the mount\n" {
		t.Errorf("hard-linked manifest notes in the store: %q", mm.Notes())
	}

	// 3. ".." and odd names.
	parent, err := os.Stat(filepath.Dir(m.dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{m.dir + "/..", m.dir + "/vm/../..", m.dir + "/vm/100/2024-06-01T02:00:04Z/../../../..", m.dir + "/ns/prod/ns/../../../.."} {
		fi, err := os.Stat(p)
		if err != nil || !os.SameFile(fi, parent) {
			t.Errorf("%s is not the mountpoint's parent: %v", p, err)
		}
	}
	dfd, err := unix.Open(m.path("vm/100"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, "../../..", &st, 0); err != nil || st.Ino != parent.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("openat(vm/100, ../../..) left the mount elsewhere: %v", err)
	}
	unix.Close(dfd)
	storeParent := filepath.Dir(store)
	mountDev := mustStat(t, m.dir).Sys().(*syscall.Stat_t).Dev
	for _, name := range []string{".chunks", ".lock", ".gc-status", "...", ".. ", " ..", "..\\..", "%2e%2e", "..%2f..",
		"store", filepath.Base(storeParent), "vm/100/2024-06-01T02:00:04Z/index.json.blob", "vm/100/2024-06-01T02:00:04Z/.index.json.lck",
		"ns/prod/.chunks", "vm/100/..", "ns/..", "vm/100/owner/..", strings.Repeat("a", 255), "vm/" + strings.Repeat("1", 255),
		"vm/100/2024-06-01T02:00:04Z/qemu-server.conf.blob", "vm/100/2024-06-01T02:00:04Z/drive-scsi0.img.fidx", "vm/\n", "vm/100\x01",
		"ns/prod/ns/db/ns/..", "vm/666/..", "ns/evil/.."} {
		fi, err := os.Lstat(m.dir + "/" + name)
		if err != nil {
			continue
		}
		// Only a real ".." component may resolve, and only to a
		// directory of the mount.
		if !slices.Contains(strings.Split(name, "/"), "..") {
			t.Errorf("%q resolves in the mount (%v)", name, fi.Mode())
		}
		if fi.Sys().(*syscall.Stat_t).Dev != mountDev || os.SameFile(fi, mustStat(t, storeParent)) || os.SameFile(fi, mustStat(t, store)) {
			t.Errorf("%q resolves outside the mount", name)
		}
	}

	// 4. The legacy lock file now exists in the snapshot directory (from
	// the hard-linked manifest's notes write); the mount does not show it.
	lck := filepath.Join(store, "vm/100/2024-06-02T02:00:03Z/.index.json.lck")
	if _, err := os.Stat(lck); err != nil {
		t.Errorf("legacy manifest lock file not where expected: %v", err)
	}
	if names, err := readNames(m.path("vm/100/2024-06-02T02:00:03Z")); err != nil || !equalStrings(names, expectedNames(t, store, "vm/100/2024-06-02T02:00:03Z")) {
		t.Errorf("ls of a snapshot with a lock file: %q, %v", names, err)
	}
	_, err = os.Stat(m.path("vm/100/2024-06-02T02:00:03Z/.index.json.lck"))
	wantErrno(t, "stat the lock file through the mount", err, syscall.ENOENT)
	m.stop()

	// Nothing outside changed, no symlink was replaced or removed.
	diffDigests(t, outsideBefore, treeDigest(t, outside))
	plant[lckSnap+"/.index.json.lck"] = outside + "/owner.txt"
	for rel, target := range plant {
		if got, err := os.Readlink(filepath.Join(store, rel)); err != nil || got != target {
			t.Errorf("symlink %s now %q, %v", rel, got, err)
		}
	}
}

// setBlobNotes rewrites the notes of a manifest file outside the store.
func setBlobNotes(t *testing.T, p, notes string) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mm, err := manifest.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := mm.Unprotected().SetNotes(notes); err != nil {
		t.Fatal(err)
	}
	out, err := mm.EncodeBlob()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(p, text string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
