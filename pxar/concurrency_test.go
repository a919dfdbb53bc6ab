package pxar

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentUse shares one Archive with a two-directory cache between
// goroutines that list, look up and read everything at once; every result
// must equal a single-threaded walk (run with -race).
func TestConcurrentUse(t *testing.T) {
	ref, _ := openFixture(t, fixtures[1], Options{})
	want, err := treeWalk(ref)
	if err != nil {
		t.Fatal(err)
	}
	contents := map[string][]byte{}
	for _, w := range want {
		if w.e.Kind == KindFile {
			if contents[w.path], err = readAll(ref, w.e, 1<<20); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, _ := openFixture(t, fixtures[1], Options{DirCacheSize: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				got, err := treeWalk(a)
				if err != nil {
					errs <- err
					return
				}
				if len(got) != len(want) {
					errs <- fmt.Errorf("goroutine %d: %d entries, want %d", g, len(got), len(want))
					return
				}
				for i := range got {
					w := want[(i+g*7+round)%len(want)]
					e, err := lookupPath(a, w.path)
					if err != nil || e.ID != w.e.ID || formatEntry(w.path, e) != formatEntry(w.path, w.e) {
						errs <- fmt.Errorf("lookup %s: %v", w.path, err)
						return
					}
					if e.Kind == KindFile {
						b, err := readAll(a, e, 4096+g)
						if err != nil || !bytes.Equal(b, contents[w.path]) {
							errs <- fmt.Errorf("read %s: %v", w.path, err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
