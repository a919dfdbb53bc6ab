package fs

import (
	"fmt"
	"testing"
)

// TestChildrenCache covers the child cache across its switch from a slice
// to a map: get, peek, remove (only the same node), drop, and Forget.
func TestChildrenCache(t *testing.T) {
	f := &FS{}
	var c children
	mk := func(name string) func() node {
		return func() node { return &ownerFile{readOnlyFile: readOnlyFile{newBase(f, "g/"+name)}} }
	}
	nodes := map[string]node{}
	for i := 0; i < 2*fewKids+3; i++ {
		name := fmt.Sprintf("k%02d", i)
		n, created := c.get(name, mk(name))
		if !created {
			t.Fatalf("%s: not created", name)
		}
		if n.base().parent != &c {
			t.Fatalf("%s: parent not set", name)
		}
		nodes[name] = n
		// Every earlier child is still the same object.
		for old, want := range nodes {
			if got, ok := c.peek(old); !ok || got != want {
				t.Fatalf("after adding %s: peek(%s) = %v, %v", name, old, got, ok)
			}
			if got, created := c.get(old, mk(old)); created || got != want {
				t.Fatalf("after adding %s: get(%s) made a new node", name, old)
			}
		}
		if i == fewKids-1 && c.m != nil || i == fewKids && c.m == nil {
			t.Fatalf("after %d children: map %v", i+1, c.m != nil)
		}
	}
	// remove only removes the node it is given.
	other := mk("k00")()
	c.remove("k00", other.base())
	if _, ok := c.peek("k00"); !ok {
		t.Error("remove dropped a different node")
	}
	nodes["k01"].base().Forget()
	if _, ok := c.peek("k01"); ok {
		t.Error("Forget did not remove the node")
	}
	c.drop("k02")
	if _, ok := c.peek("k02"); ok {
		t.Error("drop did not remove the node")
	}
	// The same in slice mode.
	var s children
	a, _ := s.get("notes", mk("notes"))
	b, _ := s.get("manifest.json", mk("manifest.json"))
	a.base().Forget()
	if _, ok := s.peek("notes"); ok {
		t.Error("Forget did not remove from the slice")
	}
	if got, ok := s.peek("manifest.json"); !ok || got != b {
		t.Error("Forget removed the wrong child")
	}
	s.drop("manifest.json")
	if len(s.few) != 0 || s.m != nil {
		t.Errorf("not empty: %v %v", s.few, s.m)
	}
}
