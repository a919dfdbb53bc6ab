package encoder

import (
	"slices"
	"testing"
)

// The slot → sorted-index permutations of pxar-format.md §7.1.
func TestBSTOrder(t *testing.T) {
	for n, want := range map[int][]int{
		0:  {},
		1:  {0},
		2:  {1, 0},
		5:  {3, 1, 4, 0, 2},
		10: {6, 3, 8, 1, 5, 7, 9, 0, 2, 4},
		16: {8, 4, 12, 2, 6, 10, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0},
		17: {9, 5, 13, 3, 7, 11, 15, 1, 4, 6, 8, 10, 12, 14, 16, 0, 2},
	} {
		items := make([]goodbyeItem, n)
		for i := range items {
			// reversed input: bstOrder sorts by hash itself
			items[i] = goodbyeItem{hash: uint64(n - 1 - i), offset: uint64(n - 1 - i)}
		}
		got := []int{}
		for _, it := range bstOrder(items) {
			got = append(got, int(it.offset))
		}
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: %v, want %v", n, got, want)
		}
	}
}
