package fs

import (
	"fmt"
	"testing"
)

// TestChildrenCache covers the child cache across its switch from a slice
// to a map: get, peek, remove (only the same node), drop, and Forget.
func TestChildrenCache(t *testing.T) {
	f := &FS{}
	d := &dirBase{nodeBase: newBase(f, "g")}
	c := &d.kids
	mk := func(name string) func() node {
		return func() node { return &ownerFile{readOnlyFile: readOnlyFile{newBase(f, "g/"+name)}} }
	}
	nodes := map[string]node{}
	for i := 0; i < 2*fewKids+3; i++ {
		name := fmt.Sprintf("k%02d", i)
		n, created := c.get(d, name, mk(name))
		if !created {
			t.Fatalf("%s: not created", name)
		}
		if n.base().parent != d {
			t.Fatalf("%s: parent not set", name)
		}
		nodes[name] = n
		// Every earlier child is still the same object.
		for old, want := range nodes {
			if got, ok := c.peek(old); !ok || got != want {
				t.Fatalf("after adding %s: peek(%s) = %v, %v", name, old, got, ok)
			}
			if got, created := c.get(d, old, mk(old)); created || got != want {
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
	sd := &dirBase{nodeBase: newBase(f, "s")}
	s := &sd.kids
	a, _ := s.get(sd, "notes", mk("notes"))
	b, _ := s.get(sd, "manifest.json", mk("manifest.json"))
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

// TestFileNodePaths: the files that keep only their name show the full path
// (relPath, display) and hash it for the inode, like every other node.
func TestFileNodePaths(t *testing.T) {
	f := &FS{}
	root := &dirBase{nodeBase: newBase(f, "")}
	vm := &dirBase{nodeBase: newBase(f, "vm")}
	vm.parent = root
	snap := &dirBase{nodeBase: newBase(f, "vm/100/2024-01-01T00:00:00Z")}
	n := newFileBase(f, snap, NotesName)
	if got, want := n.relPath(), "vm/100/2024-01-01T00:00:00Z/notes"; got != want {
		t.Errorf("relPath %q, want %q", got, want)
	}
	if got, want := n.display(), "/vm/100/2024-01-01T00:00:00Z/notes"; got != want {
		t.Errorf("display %q, want %q", got, want)
	}
	if n.ino != inodeOf("vm/100/2024-01-01T00:00:00Z/notes") {
		t.Error("inode is not the full path's")
	}
	if got := vm.relPath(); got != "vm" {
		t.Errorf("top-level directory relPath %q", got)
	}
	if got := snap.display(); got != "/vm/100/2024-01-01T00:00:00Z" {
		t.Errorf("directory display %q", got)
	}
}
