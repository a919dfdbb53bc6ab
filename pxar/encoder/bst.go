package encoder

import (
	"math/bits"
	"slices"
)

// goodbyeItem is one child's entry in a goodbye table.
type goodbyeItem struct {
	hash, offset, size uint64
}

// bstOrder returns the items sorted by hash and permuted into the array
// layout of a complete binary search tree (pxar-format.md §7.1): slot 0 is
// the root, 2i+1 and 2i+2 the children of slot i.
func bstOrder(items []goodbyeItem) []goodbyeItem {
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b goodbyeItem) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	out := make([]goodbyeItem, len(sorted))
	if len(sorted) > 0 {
		bstPlace(out, sorted, 0, len(sorted), bits.Len(uint(len(sorted)))-1, 0)
	}
	return out
}

// bstPlace puts the n sorted items src[o:o+n] into the subtree rooted at
// slot i of out; e is floor(log2(n)) of the top call, minus the depth.
func bstPlace(out, src []goodbyeItem, o, n, e, i int) {
	p := 1 << e
	t := p + p>>1 - 1
	m := p - 1 // size of the left subtree
	if n <= t {
		m = p - 1 - (t - n)
	}
	out[i] = src[o+m]
	if m > 0 {
		bstPlace(out, src, o, m, e-1, 2*i+1)
	}
	if m+1 < n {
		bstPlace(out, src, o+m+1, n-m-1, e-1, 2*i+2)
	}
}
