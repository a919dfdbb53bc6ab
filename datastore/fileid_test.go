package datastore

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileID: every change pbsfs must notice gives a file a new identity
// (and digest): a rewrite by rename, content changed in place, a touch, a
// chmod or chown; looking again at an unchanged file gives the same one.
func TestFileID(t *testing.T) {
	s := newStore(t, "run")
	p := filepath.Join(s.Path(), "f")
	must(t, os.WriteFile(p, []byte("one"), 0o644))
	stat := func() Stamp {
		t.Helper()
		st, err := s.statRel("f")
		must(t, err)
		return st
	}
	prev := stat()
	if again := stat(); again.ID() != prev.ID() || again.ID().Digest() != prev.ID().Digest() {
		t.Fatal("an unchanged file got a new identity")
	}
	for _, c := range []struct {
		name   string
		change func()
	}{
		{"rewritten by rename", func() {
			must(t, os.WriteFile(p+".tmp", []byte("one"), 0o644))
			must(t, os.Rename(p+".tmp", p))
		}},
		{"same size written in place", func() {
			must(t, os.WriteFile(p, []byte("two"), 0o644))
		}},
		{"touched", func() {
			future := time.Now().Add(time.Hour)
			must(t, os.Chtimes(p, future, future))
		}},
		{"chmod", func() { must(t, os.Chmod(p, 0o600)) }},
		{"chown", func() { must(t, os.Chown(p, 4242, 4242)) }},
	} {
		time.Sleep(10 * time.Millisecond) // a coarse ctime clock must tick
		c.change()
		cur := stat()
		if cur.ID() == prev.ID() || cur.ID().Digest() == prev.ID().Digest() {
			t.Errorf("%s: same identity %+v", c.name, cur.ID())
		}
		prev = cur
	}
}
