package pxar

import "testing"

// The directory cache counts the children of the listings it holds,
// replaced ones included, and evicts the least recently used beyond its
// entry bound, but keeps the newest listing whatever its size.
func TestDirCacheEntryBound(t *testing.T) {
	c, err := newDirCache(100, 10)
	if err != nil {
		t.Fatal(err)
	}
	kids := func(n int) *dirState { return &dirState{children: make([]*Entry, n)} }
	c.add(dirKey{end: 1}, &dirState{})
	c.add(dirKey{end: 1}, kids(3)) // listed: replaces the opened state
	c.add(dirKey{end: 2}, kids(4))
	if d, n := c.stats(); d != 2 || n != 7 {
		t.Fatalf("stats = %d dirs, %d entries; want 2, 7", d, n)
	}
	c.add(dirKey{end: 2}, kids(5)) // replaced again
	if _, n := c.stats(); n != 8 {
		t.Fatalf("after replacing: %d entries, want 8", n)
	}
	c.get(dirKey{end: 1})
	c.add(dirKey{end: 3}, kids(4)) // 12 > 10: the least recently used (2) goes
	if _, ok := c.peek(dirKey{end: 2}); ok {
		t.Error("2 not evicted")
	}
	if d, n := c.stats(); d != 2 || n != 7 {
		t.Fatalf("stats = %d dirs, %d entries; want 2, 7", d, n)
	}
	c.add(dirKey{end: 4}, kids(50))
	if d, n := c.stats(); d != 1 || n != 50 {
		t.Fatalf("a listing larger than the bound: %d dirs, %d entries; want 1, 50", d, n)
	}
}
