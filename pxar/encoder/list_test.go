package encoder

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"pbsfs/pxar"
)

// listed turns the directory n into one whose entries come from List, and
// counts the calls.
func listed(n *Node, calls map[string]int) {
	children := n.Children
	n.Children = nil
	name := n.Name
	n.List = func() ([]*Node, error) {
		calls[name]++
		return children, nil
	}
}

// A tree whose directories give their entries through List encodes to the
// same bytes as the same tree with Children (v1, split, catalog), and each
// List is called once per encoding.
func TestListedDirectoriesEncodeAlike(t *testing.T) {
	encodeAll := func(root *Node) (v1, meta, payload, catalog []byte) {
		var a, b, c, d bytes.Buffer
		if err := WriteV1(&a, root); err != nil {
			t.Fatal(err)
		}
		if err := WriteSplit(&b, &c, root, SplitOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := WriteCatalog(&d, CatalogArchive{Name: "root.pxar.didx", Root: root}); err != nil {
			t.Fatal(err)
		}
		return a.Bytes(), b.Bytes(), c.Bytes(), d.Bytes()
	}
	wv1, wmeta, wpayload, wcat := encodeAll(crateTree().root)

	lazy := crateTree().root
	calls := map[string]int{}
	// sub/deep's hardlink points into docs: sub and deep stay eager, so
	// the root's listing sees it before docs is written.
	for _, c := range lazy.Children {
		if c.kind() == pxar.ModeDir && c.Name != "sub" {
			listed(c, calls)
		}
	}
	listed(lazy, calls)
	gv1, gmeta, gpayload, gcat := encodeAll(lazy)
	sameBytes(t, "v1", gv1, wv1)
	sameBytes(t, "mpxar", gmeta, wmeta)
	sameBytes(t, "ppxar", gpayload, wpayload)
	sameBytes(t, "catalog", gcat, wcat)
	for _, d := range []string{"", "acl-dir", "bin", "dev", "docs", "emptydir"} {
		if calls[d] != 3 {
			t.Errorf("List of %q called %d times in three encodings", d, calls[d])
		}
	}
	if len(calls) != 6 {
		t.Errorf("List calls %v", calls)
	}
}

func TestListedDirectoryErrors(t *testing.T) {
	file := func(name string) *Node { return &Node{Name: name, Mode: pxar.ModeRegular | 0o644, Data: []byte("x")} }
	dir := func(name string, list func() ([]*Node, error)) *Node {
		return &Node{Name: name, Mode: pxar.ModeDir | 0o755, List: list}
	}
	target := file("t")
	crossing := &Node{Mode: pxar.ModeDir | 0o755, Children: []*Node{
		dir("a", func() ([]*Node, error) { return []*Node{target}, nil }),
		dir("b", func() ([]*Node, error) { return []*Node{{Name: "h", HardlinkTo: target}}, nil }),
	}}
	failing := &Node{Mode: pxar.ModeDir | 0o755, Children: []*Node{
		dir("d", func() ([]*Node, error) { return nil, errors.New("generator broke") }),
	}}
	both := dir("", func() ([]*Node, error) { return nil, nil })
	both.Children = []*Node{file("x")}
	listedFile := &Node{Mode: pxar.ModeDir | 0o755, Children: []*Node{
		{Name: "f", Mode: pxar.ModeRegular, List: func() ([]*Node, error) { return nil, nil }},
	}}
	for _, tc := range []struct {
		name string
		root *Node
		want string
	}{
		{"hardlink into an earlier listing", crossing, "not an earlier regular file"},
		{"list error", failing, "/d: list: generator broke"},
		{"both children and list", both, "both Children and List"},
		{"list of a file", listedFile, "children of a non-directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteV1(io.Discard, tc.root); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// A hardlink to a file of the same listing works.
	same := &Node{Mode: pxar.ModeDir | 0o755, Children: []*Node{
		dir("a", func() ([]*Node, error) { t2 := file("t"); return []*Node{t2, {Name: "u", HardlinkTo: t2}}, nil }),
	}}
	if err := WriteV1(io.Discard, same); err != nil {
		t.Errorf("hardlink within one listing: %v", err)
	}
}
