package integration

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pbsfs/demo"
)

// TestLayout lists every directory of the mount and compares it with the
// listing the datastore on disk calls for; internals stay hidden.
func TestLayout(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	want := expectedTree(t, store)

	// The sample has the three namespaces; the model must see them too.
	for dir, names := range map[string][]string{
		"":              {"ct", "host", "ns", "vm"},
		"ns":            {"prod"},
		"ns/prod":       {"ct", "host", "ns", "vm"},
		"ns/prod/ns":    {"db"},
		"ns/prod/ns/db": {"ct", "vm"},
	} {
		if !equalStrings(want[dir], names) {
			t.Fatalf("model lists %q as %q, want %q (sample changed?)", dir, want[dir], names)
		}
	}

	got := map[string][]string{}
	var walk func(rel string)
	walk = func(rel string) {
		names, err := readNames(m.path(rel))
		if err != nil {
			t.Errorf("readdir %q: %v", rel, err)
			return
		}
		got[rel] = names
		for _, n := range names {
			child := filepath.Join(rel, n)
			fi, err := os.Lstat(m.path(child))
			if err != nil {
				t.Errorf("lstat %q: %v", child, err)
				continue
			}
			wantDir := classify(child) != lvFile
			if fi.IsDir() != wantDir {
				t.Errorf("%q: IsDir = %v, want %v", child, fi.IsDir(), wantDir)
			}
			if fi.IsDir() {
				if classify(child) != lvArchive { // pxar_test.go looks inside
					walk(child)
				}
			} else if !fi.Mode().IsRegular() {
				t.Errorf("%q: mode %v, want a regular file", child, fi.Mode())
			}
		}
	}
	walk("")
	for dir, names := range want {
		if !equalStrings(got[dir], names) {
			t.Errorf("ls %q = %q, want %q", dir, got[dir], names)
		}
	}
	for dir := range got {
		if _, ok := want[dir]; !ok {
			t.Errorf("unexpected directory %q", dir)
		}
	}

	// Datastore internals and archive files under their stored names are
	// not shown.
	hidden := []string{
		".chunks", ".lock",
		"vm/100/owner/x",
		demo.SampleProtected + "/.protected",
		demo.SampleProtected + "/index.json.blob",
		demo.SampleProtected + "/qemu-server.conf.blob",
		demo.SampleProtected + "/drive-scsi0.img.fidx",
		"vm/100/2024-06-01T02:00:04Z/client.log.blob",
		demo.SampleUnfinished + "/qemu-server.conf.blob",
		"ct/200/2024-06-01T01:30:00Z/root.pxar.didx",
	}
	for _, h := range hidden {
		if _, err := os.Lstat(m.path(h)); err == nil {
			t.Errorf("%s is visible in the mount", h)
		} else {
			wantErrno(t, "lstat "+h, err, syscall.ENOENT, syscall.ENOTDIR)
		}
	}

	// Modes: notes are writable, manifest.json and owner are not.
	for rel, writable := range map[string]bool{
		demo.SampleProtected + "/notes":         true,
		demo.SampleProtected + "/manifest.json": false,
		"vm/100/notes":                          true,
		"vm/100/owner":                          false,
	} {
		fi, err := os.Stat(m.path(rel))
		if err != nil {
			t.Errorf("stat %s: %v", rel, err)
			continue
		}
		if w := fi.Mode().Perm()&0o222 != 0; w != writable {
			t.Errorf("%s: mode %v, writable = %v, want %v", rel, fi.Mode(), w, writable)
		}
		if fi.Mode().Perm()&0o444 == 0 {
			t.Errorf("%s: mode %v is not readable", rel, fi.Mode())
		}
	}
}

// TestReadContent reads every file of the mount: the size stat reports is
// the number of bytes read, and the bytes are what the datastore holds
// (manifest.json = serde-style pretty JSON plus a newline, notes = the
// manifest's unprotected notes, owner and group notes = the files, archives
// = the decoded blobs and chunks; the multi-GiB sparse images by ranges,
// encrypted ones refused without a key).
func TestReadContent(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	files := 0
	for dir, names := range expectedTree(t, store) {
		for _, n := range names {
			rel := filepath.Join(dir, n)
			if classify(rel) != lvFile {
				continue
			}
			files++
			checkFile(t, m, store, rel)
		}
	}
	if files < 80 { // the sample's files outside pxar archives (pxar_test.go reads those)
		t.Errorf("only %d files checked", files)
	}

	// Partial reads at offsets, as editors and pagers do.
	rel := demo.SampleEncrypted + "/manifest.json"
	want := expectedContent(t, store, rel)
	if !strings.Contains(string(want), `"signature": "`) || !strings.Contains(string(want), `"crypt-mode": "encrypt"`) {
		t.Errorf("%s does not show the signature and crypt mode:\n%s", rel, want)
	}
	f, err := os.Open(m.path(rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range []int64{0, 1, 100, int64(len(want)) - 7, int64(len(want)) - 1} {
		buf := make([]byte, 13)
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Errorf("ReadAt %d: %v", off, err)
			continue
		}
		end := min(off+13, int64(len(want)))
		if !bytes.Equal(buf[:n], want[off:end]) {
			t.Errorf("ReadAt %d = %q, want %q", off, buf[:n], want[off:end])
		}
	}
	if n, err := f.ReadAt(make([]byte, 4), int64(len(want))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at EOF = %d, %v", n, err)
	}

	// Notes with non-ASCII text come back byte for byte.
	got, err := os.ReadFile(m.path("ct/200/2024-06-02T01:30:00Z/notes"))
	if err != nil || !strings.Contains(string(got), "日本語のメモ") {
		t.Errorf("non-ASCII notes: %q, %v", got, err)
	}
}
