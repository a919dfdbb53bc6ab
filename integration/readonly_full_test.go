package integration

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/datastore"
)

// TestReadOnlyFullWorkload browses a --read-only mount completely (every
// directory listed, every file stat'ed and read whole and in pieces) and
// tries every kind of change on every file and directory — write,
// truncate, append, chmod, chown, utimes, rename, unlink, rmdir, mkdir,
// create, mknod, symlink, link, setxattr, on notes, manifest.json, owner
// and the directories alike. Every change fails with EROFS, and the store
// is byte-identical afterwards: contents, modes, owners, sizes, mtimes and
// inodes, down to a stale temp file of a crashed writer, which a read-only
// mount must not clean up either.
func TestReadOnlyFullWorkload(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	uid, gid := backupIDs(t)
	if os.Geteuid() == 0 {
		mustSh(t, store, "chown -R "+strconv.Itoa(uid)+":"+strconv.Itoa(gid)+" vm/100")
	}
	stale := filepath.Join(store, "vm/100/2024-06-01T02:00:04Z", datastore.TempPrefix+"index.json.blob.dead01")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, store)
	m := startMount(t, store, "--read-only")

	var dirs, files []string
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(m.dir, p)
		if err != nil {
			// An encrypted pxar archive cannot be listed without the key.
			// Nothing can be looked up in it either (EACCES before EROFS).
			if a := expectedArchives(t, store, filepath.Dir(rel))[filepath.Base(rel)]; a != nil && a.encrypted && errnoOf(err) == syscall.EACCES {
				dirs = slices.DeleteFunc(dirs, func(d string) bool { return d == p })
				return filepath.SkipDir
			}
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // archived symlinks, devices, FIFOs (opening one for writing would block)
		}
		files = append(files, p)
		f, err := os.Open(p)
		if err != nil {
			// The demo store's unfinished snapshot lists no files, so
			// every file listed must open, except the encrypted
			// snapshots' archives (no key given).
			if a := expectedArchives(t, store, filepath.Dir(rel))[filepath.Base(rel)]; a != nil && a.encrypted && errnoOf(err) == syscall.EACCES {
				return nil
			}
			return err
		}
		defer f.Close()
		// Whole files, but only the head of the multi-GiB disk images.
		if _, err := io.ReadAll(io.LimitReader(f, wholeFileLimit)); err != nil {
			return err
		}
		buf := make([]byte, 7)
		for off := int64(0); off < 64<<10; off += 7 {
			n, err := f.ReadAt(buf, off)
			if n == 0 || err != nil {
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("browsing the read-only mount: %v", err)
	}
	if len(files) < 40 || len(dirs) < 20 {
		t.Fatalf("browsed only %d files in %d directories", len(files), len(dirs))
	}

	attempts := 0
	try := func(what string, err error) {
		t.Helper()
		attempts++
		wantErrno(t, what, err, syscall.EROFS)
	}
	past := time.Unix(1_000_000_000, 0)
	for _, p := range files {
		rel, _ := filepath.Rel(m.dir, p)
		try("write "+rel, os.WriteFile(p, []byte("x\n"), 0o644))
		for _, fl := range []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_CREATE} {
			f, err := os.OpenFile(p, fl, 0o644)
			if err == nil {
				f.Close()
			}
			try("open "+rel+" flags "+strconv.Itoa(fl), err)
		}
		try("truncate "+rel, os.Truncate(p, 0))
		try("chmod "+rel, os.Chmod(p, 0o600))
		try("chown "+rel, os.Chown(p, 0, 0))
		try("chown "+rel+" to backup", os.Lchown(p, uid, gid))
		try("utimes "+rel, os.Chtimes(p, past, past))
		try("rename "+rel, os.Rename(p, p+".renamed"))
		try("unlink "+rel, os.Remove(p))
		try("link "+rel, os.Link(p, p+".link"))
		try("setxattr "+rel, unix.Setxattr(p, "user.pbsfs", []byte("x"), 0))
		try("removexattr "+rel, unix.Removexattr(p, "user.pbsfs"))
	}
	for _, p := range dirs {
		rel, _ := filepath.Rel(m.dir, p)
		try("mkdir in "+rel, os.Mkdir(filepath.Join(p, "2030-01-01T00:00:00Z"), 0o755))
		try("create in "+rel, os.WriteFile(filepath.Join(p, ".notes.swp"), nil, 0o600))
		try("mknod in "+rel, unix.Mknod(filepath.Join(p, "fifo"), unix.S_IFIFO|0o644, 0))
		try("symlink in "+rel, os.Symlink("notes", filepath.Join(p, ".#notes")))
		try("chmod "+rel, os.Chmod(p, 0o700))
		try("chown "+rel, os.Chown(p, 0, 0))
		try("utimes "+rel, os.Chtimes(p, past, past))
		if p != m.dir {
			try("rmdir "+rel, os.Remove(p))
			try("rename "+rel, os.Rename(p, p+"x"))
		}
	}
	t.Logf("browsed %d files in %d directories; %d changes tried, all refused with EROFS", len(files), len(dirs), attempts)
	m.stop()

	diffDigests(t, before, treeDigest(t, store))
	if ents, err := os.ReadDir(m.lockDir); err == nil && len(ents) > 0 {
		t.Errorf("a read-only mount created lock files in %s", m.lockDir)
	}
}
