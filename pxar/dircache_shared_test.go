package pxar_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// sharedTree is a root of three directories of eight files each (27
// entries): trees made with different letters have the same layout, so
// their directories sit at the same offsets.
func sharedTree(letter string) *encoder.Node {
	root := dir("", 0o755)
	for i := range 3 {
		d := dir(fmt.Sprintf("%s%d", letter, i), 0o755)
		for j := range 8 {
			d.Children = append(d.Children, file(fmt.Sprintf("%s%d%d", letter, i, j), 0o644, []byte(letter)))
		}
		root.Children = append(root.Children, d)
	}
	return root
}

// listAll lists every directory of a depth first and returns each
// directory's names by path; after every ReadDir it calls check.
func listAll(t *testing.T, a *pxar.Archive, check func(path string)) map[string]string {
	t.Helper()
	out, err := listTree(a, check)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listTree is listAll for any goroutine: it returns the first error.
func listTree(a *pxar.Archive, check func(path string)) (map[string]string, error) {
	out := map[string]string{}
	var walk func(path string, d *pxar.Entry) error
	walk = func(path string, d *pxar.Entry) error {
		kids, err := a.ReadDir(d)
		if err != nil {
			return fmt.Errorf("ReadDir(%s): %w", path, err)
		}
		check(path)
		var names []string
		for _, k := range kids {
			names = append(names, k.Name)
			if k.IsDir() {
				if err := walk(strings.TrimSuffix(path, "/")+"/"+k.Name, k); err != nil {
					return err
				}
			}
		}
		out[path] = strings.Join(names, " ")
		return nil
	}
	root, _ := a.Root()
	return out, walk("/", root)
}

// Archives opened with one DirCache share its bounds: listing B evicts
// A's least recently used directories, the cache never holds more than
// its entry bound, directories of different archives at the same offsets
// are told apart, and evicted listings are decoded again, unchanged.
func TestDirCacheShared(t *testing.T) {
	const bound = 40
	metaA, metaB := encodeV1(t, sharedTree("a")), encodeV1(t, sharedTree("b"))
	if len(metaA) != len(metaB) {
		t.Fatalf("the archives differ in size (%d, %d): the test needs the same layout", len(metaA), len(metaB))
	}
	want := func(meta []byte) map[string]string {
		return listAll(t, scanArchive{meta: meta}.open(t, pxar.Options{}), func(string) {})
	}
	wantA, wantB := want(metaA), want(metaB)

	shared, err := pxar.NewDirCache(64, bound)
	if err != nil {
		t.Fatal(err)
	}
	opts := pxar.Options{DirCache: shared}
	a, b := scanArchive{name: "A", meta: metaA}.open(t, opts), scanArchive{name: "B", meta: metaB}.open(t, opts)
	within := func(path string) {
		if d, n := shared.Stats(); n > bound {
			t.Errorf("after listing %s: %d directories with %d children cached, bound %d", path, d, n, bound)
		}
	}
	check := func(name string, got, want map[string]string) {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s lists %v, want %v", name, got, want)
		}
	}
	check("A", listAll(t, a, within), wantA)
	_, listedA := pxar.ArchiveDirCacheStats(a)
	if _, n := shared.Stats(); n != 27 || listedA != 27 {
		t.Errorf("after listing A: the shared cache holds %d children, %d of them A's; want 27, 27", n, listedA)
	}
	check("B", listAll(t, b, within), wantB)
	_, leftA := pxar.ArchiveDirCacheStats(a)
	_, listedB := pxar.ArchiveDirCacheStats(b)
	if leftA+listedB > bound || listedB != 27 || leftA >= listedA {
		t.Errorf("after listing B: A's listings hold %d children (%d before), B's %d; want B's 27 and A's evicted down to %d",
			leftA, listedA, listedB, bound-27)
	}
	check("A again", listAll(t, a, within), wantA)
	check("B again", listAll(t, b, within), wantB)
}

// A scan ahead stays within half of the shared cache's entry bound, as
// within half of an Archive's own (Options.DirCacheEntries).
func TestDirCacheSharedScanBudget(t *testing.T) {
	shared, err := pxar.NewDirCache(64, 40)
	if err != nil {
		t.Fatal(err)
	}
	a := scanArchive{name: "A", meta: encodeV1(t, sharedTree("a"))}.open(t, pxar.Options{DirCache: shared, ScanAhead: 1000})
	root, _ := a.Root()
	kids, err := a.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	// The scan may decode 20 entries: two of the three directories (8
	// files each); the third is left to ReadDir.
	if d, n := shared.Stats(); n > len(kids)+20 || n == len(kids) {
		t.Errorf("after listing the root: %d directories with %d children cached; the root has %d, the scan may add up to 20", d, n, len(kids))
	}
}

// NewDirCache refuses a cache of no directories.
func TestNewDirCacheSize(t *testing.T) {
	if _, err := pxar.NewDirCache(0, 10); err == nil {
		t.Error("NewDirCache(0, 10) succeeded")
	}
}

// Archives walked at the same time through one small DirCache list
// correctly and keep its bound (run with -race).
func TestDirCacheSharedConcurrent(t *testing.T) {
	const bound = 40
	shared, err := pxar.NewDirCache(8, bound)
	if err != nil {
		t.Fatal(err)
	}
	var trees []scanArchive
	for _, letter := range []string{"a", "b", "c"} {
		trees = append(trees, scanArchive{name: letter, meta: encodeV1(t, sharedTree(letter))})
	}
	done := make(chan error, 2*len(trees))
	for _, s := range trees {
		want := listAll(t, s.open(t, pxar.Options{}), func(string) {})
		for range 2 {
			a := s.open(t, pxar.Options{DirCache: shared, ScanAhead: 100})
			go func() {
				for range 20 {
					got, err := listTree(a, func(string) {})
					if err != nil || !reflect.DeepEqual(got, want) {
						done <- fmt.Errorf("%s lists %v (%v), want %v", s.name, got, err, want)
						return
					}
				}
				done <- nil
			}()
		}
	}
	for range 2 * len(trees) {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if d, n := shared.Stats(); d > 8 || n > bound {
		t.Errorf("%d directories with %d children cached, bound 8, %d", d, n, bound)
	}
}
