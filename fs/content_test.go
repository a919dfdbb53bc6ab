package fs

import (
	"testing"
	"time"

	"bazil.org/fuse"

	"pbsfs/datastore"
)

// TestContentCacheOpenFlags drives the page-cache decision through the
// opens and attribute replies of a file that changes, as the kernel sends
// them.
func TestContentCacheOpenFlags(t *testing.T) {
	stamp := func(ino uint64) datastore.Stamp {
		return datastore.Stamp{Dev: 1, Ino: ino, Size: 100, Mtime: time.Unix(1, 0), Ctime: time.Unix(1, 0)}
	}
	v1, v2, v3 := stamp(1), stamp(2), stamp(3)
	var c contentCache
	steps := []struct {
		what    string
		attr    *datastore.Stamp // attributes given to the kernel before the open
		open    datastore.Stamp
		want    fuse.OpenResponseFlags
		changed bool
	}{
		{"first open", &v1, v1, 0, false},
		{"same file again", nil, v1, fuse.OpenKeepCache, false},
		{"replaced, attributes given", &v2, v2, fuse.OpenDirectIO, true},
		// The DirectIO open's invalidation of v1's pages runs in the
		// background: keeping the cache now could serve them.
		{"same as the DirectIO open", nil, v2, 0, false},
		{"then from the cache", nil, v2, fuse.OpenKeepCache, false},
		{"replaced, kernel not told yet", nil, v3, fuse.OpenDirectIO, true},
		{"attributes of it given", &v3, v3, 0, false},
		{"and from the cache", nil, v3, fuse.OpenKeepCache, false},
	}
	for _, s := range steps {
		if s.attr != nil {
			c.sawAttr(*s.attr)
		}
		flags, changed, release := c.openFlags(s.open)
		release()
		if flags != s.want || changed != s.changed {
			t.Errorf("%s: flags %v changed %v, want %v %v", s.what, flags, changed, s.want, s.changed)
		}
	}
}

// TestContentCacheOneContentInThePageCache: while a handle reads one
// content through the page cache, an open of other content is DirectIO —
// a page-cache open would drop or refill the pages under the first
// reader, whose reads would then mix both (torn manifest.json in the
// soak test). Once the first handle is released, the page cache is used
// again.
func TestContentCacheOneContentInThePageCache(t *testing.T) {
	stamp := func(ino uint64) datastore.Stamp {
		return datastore.Stamp{Dev: 1, Ino: ino, Size: 100, Mtime: time.Unix(1, 0), Ctime: time.Unix(1, 0)}
	}
	v1, v2 := stamp(1), stamp(2)
	var c contentCache
	c.sawAttr(v1)
	if f, _, rel := c.openFlags(v1); f != 0 {
		t.Fatalf("first open: %v", f)
	} else {
		rel()
	}
	flagsA, _, releaseA := c.openFlags(v1) // a reader of v1, still reading
	if flagsA != fuse.OpenKeepCache {
		t.Fatalf("reader of v1: %v", flagsA)
	}
	c.sawAttr(v2)
	if f, changed, rel := c.openFlags(v2); f != fuse.OpenDirectIO || !changed {
		t.Fatalf("v2 after the change: %v %v", f, changed)
	} else {
		rel()
	}
	f, _, rel := c.openFlags(v2)
	rel()
	if f != fuse.OpenDirectIO {
		t.Fatalf("v2 while v1 is read through the page cache: %v, want DirectIO", f)
	}
	releaseA()
	releaseA() // a second release changes nothing
	if f, _, rel := c.openFlags(v2); f != 0 {
		t.Fatalf("v2 once v1's reader is gone: %v, want no flag", f)
	} else {
		rel()
	}
	if f, _, rel := c.openFlags(v2); f != fuse.OpenKeepCache {
		t.Fatalf("v2 again: %v, want OpenKeepCache", f)
	} else {
		rel()
	}
}
