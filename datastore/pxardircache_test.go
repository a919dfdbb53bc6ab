package datastore

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// pxarListing lists every directory of an archive depth first and returns
// each directory's names by path; after every ReadDir it calls check.
func pxarListing(t *testing.T, a *pxar.Archive, check func(path string)) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var walk func(path string, d *pxar.Entry)
	walk = func(path string, d *pxar.Entry) {
		kids, err := a.ReadDir(d)
		if err != nil {
			t.Fatalf("ReadDir(%s): %v", path, err)
		}
		check(path)
		names := make([]string, 0, len(kids))
		for _, k := range kids {
			names = append(names, k.Name)
			if k.IsDir() {
				walk(strings.TrimSuffix(path, "/")+"/"+k.Name, k)
			}
		}
		out[path] = names
	}
	root, err := a.Root()
	if err != nil {
		t.Fatal(err)
	}
	walk("/", root)
	return out
}

// threePxarArchives writes a snapshot with three pxar archives (the v1 and
// split fixtures and a generated v1 tree of 5 directories of 20 files)
// and returns it with each archive's listing made straight from its
// streams.
func threePxarArchives(t *testing.T, s *Store) (Snapshot, map[string]map[string][]string) {
	t.Helper()
	gen := &encoder.Node{Mode: pxar.ModeDir | 0o755}
	for i := range 5 {
		d := &encoder.Node{Name: fmt.Sprintf("dir%d", i), Mode: pxar.ModeDir | 0o755}
		for j := range 20 {
			d.Children = append(d.Children, &encoder.Node{Name: fmt.Sprintf("file%02d", j), Mode: pxar.ModeRegular | 0o644, Data: []byte{byte(j)}})
		}
		gen.Children = append(gen.Children, d)
	}
	var genMeta bytes.Buffer
	if err := encoder.WriteV1(&genMeta, gen); err != nil {
		t.Fatal(err)
	}
	v1 := pxarFixture(t, "pxar-crate-v1.pxar")
	meta, payload := pxarFixture(t, "pxar-crate-v2.mpxar"), pxarFixture(t, "pxar-crate-v2.ppxar")
	sn := writeStreams(t, s, "400", nil, []string{"root.pxar.didx", "data.mpxar.didx", "data.ppxar.didx", "gen.pxar.didx"},
		map[string][]byte{"root.pxar.didx": v1, "data.mpxar.didx": meta, "data.ppxar.didx": payload, "gen.pxar.didx": genMeta.Bytes()})
	want := map[string]map[string][]string{}
	for name, streams := range map[string][2][]byte{"root.pxar": {v1}, "data.pxar": {meta, payload}, "gen.pxar": {genMeta.Bytes()}} {
		var p io.ReaderAt
		if streams[1] != nil {
			p = bytes.NewReader(streams[1])
		}
		a, err := pxar.Open(bytes.NewReader(streams[0]), int64(len(streams[0])), p, int64(len(streams[1])), pxar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want[name] = pxarListing(t, a, func(string) {})
	}
	return sn, want
}

// Every pxar archive a store opens, v1 and split, keeps its decoded
// directories in the store's one directory cache.
func TestOpenPxarSharesDirCache(t *testing.T) {
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	sn, want := threePxarArchives(t, s)
	if d, n := s.arch.dirs.Stats(); d != 0 || n != 0 {
		t.Fatalf("a new store's directory cache holds %d directories, %d children", d, n)
	}
	total := 0
	for _, name := range []string{"root.pxar", "data.pxar", "gen.pxar"} {
		a, _, _, err := s.OpenPxar(sn, name)
		if err != nil {
			t.Fatal(err)
		}
		pxarListing(t, a, func(string) {})
		for _, names := range want[name] {
			total += len(names)
		}
		if _, n := s.arch.dirs.Stats(); n != total {
			t.Errorf("after listing %s: the store's directory cache holds %d children, the archives listed so far %d", name, n, total)
		}
	}
}

// Three archives listed fully through a store whose directory cache is
// smaller than their listings together: the cache never exceeds its
// bound, and every listing is right, the evicted ones decoded again.
func TestOpenPxarDirCacheBound(t *testing.T) {
	const bound = 60
	s := openArchiveStore(t, "", ArchiveOptions{Enabled: true})
	small, err := pxar.NewDirCache(16, bound)
	if err != nil {
		t.Fatal(err)
	}
	s.arch.dirs = small // before any archive is opened
	sn, want := threePxarArchives(t, s)
	largest := 0
	for _, w := range want {
		for _, names := range w {
			largest = max(largest, len(names))
		}
	}
	if largest > bound {
		t.Fatalf("a listing of %d children: the bound %d would not hold", largest, bound)
	}
	for round := range 2 {
		for _, name := range []string{"root.pxar", "data.pxar", "gen.pxar"} {
			a, _, _, err := s.OpenPxar(sn, name)
			if err != nil {
				t.Fatal(err)
			}
			got := pxarListing(t, a, func(path string) {
				if d, n := small.Stats(); n > bound || d > 16 {
					t.Errorf("round %d, %s%s listed: %d directories with %d children cached, bound 16, %d", round, name, path, d, n, bound)
				}
			})
			if !reflect.DeepEqual(got, want[name]) {
				t.Errorf("round %d: %s lists %v, want %v", round, name, got, want[name])
			}
		}
	}
	if _, n := small.Stats(); n == 0 {
		t.Error("the store's directory cache was not used")
	}
}
