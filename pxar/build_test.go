package pxar

import (
	"encoding/binary"
	"sort"
)

// A minimal archive builder for malformed-input tests: one root directory
// of children whose items after FILENAME are given raw. It is no encoder
// (that lives in pxar/encoder); it exists to place one specific defect.

func itemBytes(ht uint64, content []byte) []byte {
	return append(header(ht, uint64(HeaderSize+len(content))), content...)
}

func statBytes(mode uint64, nsec uint32) []byte {
	b := make([]byte, StatSize)
	binary.LittleEndian.PutUint64(b, mode)
	binary.LittleEndian.PutUint32(b[16:], 1000)
	binary.LittleEndian.PutUint32(b[20:], 1000)
	binary.LittleEndian.PutUint32(b[32:], nsec)
	return itemBytes(TypeEntry, b)
}

func fifoBody() []byte { return statBytes(ModeFIFO|0o644, 0) }

type rawChild struct {
	name []byte // raw FILENAME content without the NUL
	body []byte // items after FILENAME
	hash *uint64
}

// bstOrder is the slot → sorted-index permutation of §7.1.
func bstOrder(n int) []int {
	slot := make([]int, n)
	var place func(n, o, e, i int)
	place = func(n, o, e, i int) {
		p := 1 << e
		t := p + p>>1 - 1
		m := p - 1
		if n <= t {
			m = p - 1 - (t - n)
		}
		slot[i] = o + m
		if m > 0 {
			place(m, o, e-1, 2*i+1)
		}
		if m+1 < n {
			place(n-m-1, o+m+1, e-1, 2*i+2)
		}
	}
	if n > 0 {
		e := 0
		for 1<<(e+1) <= n {
			e++
		}
		place(n, 0, e, 0)
	}
	return slot
}

// flatArchive builds a v1 archive whose root directory holds kids.
func flatArchive(kids []rawChild) []byte {
	b := statBytes(ModeDir|0o755, 0)
	type item struct{ hash, start, end uint64 }
	var items []item
	for _, k := range kids {
		start := uint64(len(b))
		b = append(b, itemBytes(TypeFilename, append(append([]byte(nil), k.name...), 0))...)
		b = append(b, k.body...)
		h := HashFilename(k.name)
		if k.hash != nil {
			h = *k.hash
		}
		items = append(items, item{h, start, uint64(len(b))})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].hash < items[j].hash })
	gb := uint64(len(b))
	n := len(items)
	b = append(b, header(TypeGoodbye, uint64(HeaderSize+GoodbyeItemSize*(n+1)))...)
	for _, s := range bstOrder(n) {
		it := items[s]
		b = binary.LittleEndian.AppendUint64(b, it.hash)
		b = binary.LittleEndian.AppendUint64(b, gb-it.start)
		b = binary.LittleEndian.AppendUint64(b, it.end-it.start)
	}
	b = binary.LittleEndian.AppendUint64(b, GoodbyeTailMarker)
	b = binary.LittleEndian.AppendUint64(b, gb)
	b = binary.LittleEndian.AppendUint64(b, uint64(HeaderSize+GoodbyeItemSize*(n+1)))
	return b
}
