package fs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/manifest"
	"pbsfs/pxar/encoder"
)

// capSource writes a tree of dirs directories of files files each (every
// file with its own content), a nested directory, symlinks and a hardlink
// pair, and returns its path and the number of entries below it.
func capSource(t *testing.T, dirs, files int) (string, int) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	n := 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	must(os.MkdirAll(src, 0o755))
	n--
	for d := range dirs {
		dir := filepath.Join(src, fmt.Sprintf("dir-%03d", d))
		must(os.Mkdir(dir, 0o755))
		for f := range files {
			must(os.WriteFile(filepath.Join(dir, fmt.Sprintf("f-%04d", f)), []byte(strings.Repeat(fmt.Sprintf("%d/%d\n", d, f), f%7+1)), 0o644))
		}
		must(os.Symlink(fmt.Sprintf("f-%04d", d%files), filepath.Join(dir, "link")))
	}
	deep := filepath.Join(src, "dir-000", "a", "b")
	must(os.MkdirAll(filepath.Join(src, "dir-000", "a"), 0o755))
	must(os.Mkdir(deep, 0o755))
	must(os.WriteFile(filepath.Join(deep, "target"), []byte("hardlinked\n"), 0o600))
	must(os.Link(filepath.Join(deep, "target"), filepath.Join(src, "dir-001", "hardlink")))
	return src, n
}

// capEnv mounts a store whose ct/100/<tFirst>/root.pxar is the v1 archive
// of src, served with Options.PxarCap = limit, and returns the archive's
// path in the mount, the FS and the highest bazil node ID a lookup has
// answered so far: bazil reuses the IDs of forgotten nodes, so it is the
// most nodes held at once (its node table never holds more).
func capEnv(t *testing.T, src string, limit int) (string, *FS, *capCounters) {
	t.Helper()
	tree, err := encoder.FromDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var v1 bytes.Buffer
	if err := encoder.WriteV1(&v1, tree); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "store")
	if err := datastore.Create(base, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := datastore.Open(base, datastore.Options{
		Lock:     lock.Config{Scheme: lock.Run, Dir: filepath.Join(dir, "locks"), Store: "test", UID: -1, GID: -1},
		Archives: datastore.ArchiveOptions{Enabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := datastore.Group{Type: "ct", ID: "100"}
	if err := st.CreateGroup(g, "root@pam"); err != nil {
		t.Fatal(err)
	}
	var parts [][]byte
	for rest := v1.Bytes(); len(rest) > 0; {
		k := min(len(rest), 96<<10)
		parts = append(parts, rest[:k])
		rest = rest[k:]
	}
	fi, didx, err := st.BuildDynamicIndex("root.pxar.didx", parts, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.New("ct", "100", 1717597321, []manifest.FileInfo{fi})
	if err != nil {
		t.Fatal(err)
	}
	sn := datastore.Snapshot{Group: g, Time: tFirst}
	if err := st.WriteSnapshot(sn, m, map[string][]byte{fi.Filename: didx}); err != nil {
		t.Fatal(err)
	}
	o := Options{PxarCap: limit, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	e := &env{t: t, ctx: context.Background(), fs: New(st, o), store: st, base: base}
	var c capCounters
	debug := func(msg any) {
		v := reflect.ValueOf(msg)
		if v.Kind() != reflect.Struct {
			return
		}
		switch v.Type().Name() {
		case "request":
			c.requests.Add(1)
			return
		case "notification":
			if v.FieldByName("Op").String() == "InvalidateEntry" {
				c.invalidations.Add(1)
			}
			return
		}
		out := v.FieldByName("Out")
		if !out.IsValid() || !out.CanInterface() {
			return
		}
		if lr, ok := out.Interface().(*fuse.LookupResponse); ok {
			for id := uint64(lr.Node); ; {
				cur := c.maxNode.Load()
				if id <= cur || c.maxNode.CompareAndSwap(cur, id) {
					break
				}
			}
		}
	}
	mnt := mountEnvConfig(t, e, &fusefs.Config{Debug: debug}, MountOptions(true, false)...)
	return filepath.Join(mnt, "ct/100", tFirst, "root.pxar"), e.fs, &c
}

// capCounters watch a mount's requests (bazil's Debug hook).
type capCounters struct {
	maxNode  atomic.Uint64 // the highest node ID a lookup answered
	requests atomic.Uint64 // requests received

	invalidations atomic.Uint64 // FUSE_NOTIFY_INVAL_ENTRY sent
}

// capLimit is the cap TestPxarCap sets, against its ~2,500 entries.
const capLimit = 200

// TestPxarCap walks an archive of ~2,500 entries through a real mount
// with a cap of 200 entries: bazil's node table (the highest node ID a
// lookup answered) stays a fraction of the entries, and find, du, ls -lR,
// sha256sum of every file and cp -a + diff -r give what the source gives,
// with the same inode numbers on a second walk (after evictions).
func TestPxarCap(t *testing.T) {
	src, entries := capSource(t, 30, 80)
	arch, f, c := capEnv(t, src, capLimit)
	maxNode := &c.maxNode
	walk := func() string {
		return mustSh(t, arch, "find . -printf '%i %y %s %p\\n' | sort -k4")
	}
	r0 := c.requests.Load()
	first := walk()
	r1 := c.requests.Load()
	if got := strings.Count(first, "\n"); got != entries+1 {
		t.Fatalf("find: %d lines, want %d entries and .", got, entries+1)
	}
	held1 := maxNode.Load()
	second := walk()
	t.Logf("FUSE requests per entry, find: %.2f the first walk, %.2f the second", float64(r1-r0)/float64(entries), float64(c.requests.Load()-r1)/float64(entries))
	if first != second {
		t.Errorf("a second find after evictions differs:\n%s\nagain:\n%s", first, second)
	}
	inos := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(first), "\n") {
		inos[strings.Fields(line)[0]]++
	}
	if len(inos) != entries { // the hardlink pair is one inode, "." another
		t.Errorf("%d distinct inode numbers for %d entries and ., one hardlink pair", len(inos), entries+1)
	}
	if ino := strings.Fields(mustSh(t, arch, "ls -i dir-001/hardlink dir-000/a/b/target | sort -u -k1,1 | wc -l"))[0]; ino != "1" {
		t.Errorf("hardlink and target show %s inode numbers", ino)
	}
	// Only non-directories have sizes. du counts an inode once among the
	// names with a link count above 1: the archive stores the hardlink's
	// target as a plain file (link count 1) and only the hardlink with 2,
	// so both count, as every name does.
	want := srcBytes(t, src)
	du := mustSh(t, arch, "du -s -b --apparent-size .")
	if got, _ := strconv.ParseInt(strings.Fields(du)[0], 10, 64); got != want {
		t.Errorf("du: %d bytes, want %d", got, want)
	}
	if a, b := mustSh(t, arch, "ls -lR . | wc -l"), mustSh(t, arch, "ls -lR . | wc -l"); a != b || strings.TrimSpace(a) == "0" {
		t.Errorf("ls -lR: %s then %s lines", a, b)
	}
	sums := "find . -type f -print0 | sort -z | xargs -0 sha256sum"
	if got, want := mustSh(t, arch, sums), mustSh(t, src, sums); got != want {
		t.Errorf("sha256sum of every file differs from the source's")
	}
	out := filepath.Join(t.TempDir(), "out")
	mustSh(t, arch, "cp -a . '"+out+"'")
	if o, err := sh(t, src, "diff -r --no-dereference . '"+out+"'"); err != nil {
		t.Errorf("diff -r against the source: %v\n%s", err, o)
	}
	peak := maxNode.Load()
	held, evicted := f.pxarCap.counts()
	t.Logf("%d entries, cap %d: bazil node IDs up to %d after the first walk, %d after all; %d names kept now, %d directories evicted",
		entries, capLimit, held1, peak, held, evicted)
	if peak > uint64(entries)/3 {
		t.Errorf("bazil held up to %d nodes for %d entries with a cap of %d", peak, entries, capLimit)
	}
	if evicted == 0 {
		t.Error("no directory was evicted")
	}
	// Directories go whole: an invalidation of their entry in the parent,
	// not one per name looked up in them (each of which the kernel answers
	// with a FORGET of its own).
	inv := c.invalidations.Load()
	t.Logf("%d entry invalidations for %d evicted directories", inv, evicted)
	if inv > 3*uint64(evicted) {
		t.Errorf("%d entry invalidations for %d evicted directories of ~80 names: names were dropped one by one", inv, evicted)
	}
}

// TestPxarCapOff: without the cap the same walk leaves a node per entry
// (so TestPxarCap's bound means something).
func TestPxarCapOff(t *testing.T) {
	src, entries := capSource(t, 30, 80)
	arch, _, c := capEnv(t, src, -1)
	walk := "find . -printf '%i %s\\n' >/dev/null"
	r0 := c.requests.Load()
	mustSh(t, arch, walk)
	r1 := c.requests.Load()
	mustSh(t, arch, walk)
	t.Logf("FUSE requests per entry, find: %.2f the first walk, %.2f the second", float64(r1-r0)/float64(entries), float64(c.requests.Load()-r1)/float64(entries))
	if peak := c.maxNode.Load(); peak < uint64(entries)*9/10 {
		t.Errorf("without a cap bazil held up to %d nodes for %d entries: the kernel forgot entries by itself, so TestPxarCap proves nothing here", peak, entries)
	}
}

// srcBytes is the apparent size of every regular file and symlink name
// below src.
func srcBytes(t *testing.T, src string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
