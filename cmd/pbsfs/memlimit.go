package main

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The Go runtime's soft memory limit, kept a fixed headroom above the live
// heap.
//
// A mount's heap is mostly long-lived nodes (one per inode the kernel
// holds: a million after a walk of a 1,000,000-entry archive) and the chunk
// cache; what a walk allocates besides (decoded entries, request buffers,
// chunk buffers) is garbage at once. With GOGC alone the heap may grow by
// GOGC percent of the live heap before a collection: 150 MB of garbage on
// 300 MB of nodes. memoryLimit bounds that growth to a fixed headroom
// instead, derived from the configured budgets: after every collection it
// sets the soft limit (debug.SetMemoryLimit) to what the runtime holds
// besides garbage (the live heap, stacks, runtime metadata) plus the
// headroom, never below a floor. GOGC stays on (50, main.go), so
// below the floor collections are paced as before.
//
// No death spiral: the limit follows the live heap up, so a collection is
// due only once another headroom's worth has been allocated — a
// collection per 32 MiB or more of allocation however large the heap is,
// never a collection that cannot get under the limit. (The runtime caps the
// collector at about half of the CPU besides.) GOMEMLIMIT set in the
// environment turns this off: the user's limit is kept.

// memFloor is the lowest limit set: smaller heaps are left to GOGC. It is
// where the limit starts to cost collections: a walk of a 1,000,000-entry
// archive has a live heap of ~95-145 MB (the entry cap's nodes, the chunk
// cache, bazil's request buffers), which GOGC alone lets grow to 215 MB and
// VmHWM to 219-253 MB; under 160 MiB the limit leaves it alone, above it
// the collections come every 32 MiB (BENCHMARKS.md: VmHWM 172 MiB, 235
// collections instead of 134-149, the same walk time).
const memFloor = 160 << 20

// memMinHeadroom is the least headroom over the live heap: the default
// chunk cache's size.
const memMinHeadroom = 32 << 20

// memHeadroom is the headroom for a mount with a chunk cache of cacheBytes:
// a collection may wait until a cache's worth of chunks has been replaced
// (the cache's chunks themselves are live), and at least memMinHeadroom.
func memHeadroom(cacheBytes int64) uint64 {
	return uint64(max(cacheBytes, memMinHeadroom))
}

// memTarget is the limit for a process of which inUse bytes are neither
// garbage nor returned to the OS.
func memTarget(inUse, headroom, floor uint64) int64 {
	t := uint64(math.MaxInt64)
	if inUse < t && headroom < t-inUse {
		t = inUse + headroom
	}
	return int64(max(t, min(floor, math.MaxInt64)))
}

// memoryLimit keeps the runtime's soft limit at memTarget, updated after
// every collection; stop restores the previous limit.
type memoryLimit struct {
	headroom, floor uint64
	prev            int64
	stopped         atomic.Bool
	samples         []metrics.Sample
}

// metrics read after a collection: the limit counts all memory the
// runtime has mapped and not released; of it, the heap's free spans and
// its garbage are not kept (gc/heap/live is the live heap as the last
// collection marked it, objects is live plus garbage since).
var memMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
}

// startMemoryLimit starts the limit for a mount with a chunk cache of
// cacheBytes (<= 0: none) and returns its stop function; nothing is done
// when GOMEMLIMIT is set.
func startMemoryLimit(log *slog.Logger, cacheBytes int64) (stop func()) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return func() {}
	}
	m := newMemoryLimit(memHeadroom(cacheBytes), memFloor)
	log.Debug("memory limit: the live heap plus a headroom", "headroom-MiB", m.headroom>>20, "floor-MiB", m.floor>>20)
	m.arm()
	m.update()
	return m.stop
}

func newMemoryLimit(headroom, floor uint64) *memoryLimit {
	m := &memoryLimit{headroom: headroom, floor: floor, prev: debug.SetMemoryLimit(-1)}
	for _, name := range memMetrics {
		m.samples = append(m.samples, metrics.Sample{Name: name})
	}
	return m
}

// arm runs update after the next collection (a cleanup runs once the
// collector has found its object unreachable), and arms again.
func (m *memoryLimit) arm() {
	sentinel := new([16]byte)
	runtime.AddCleanup(sentinel, func(m *memoryLimit) {
		if m.stopped.Load() {
			return
		}
		m.update()
		m.arm()
	}, m)
}

// update sets the limit from what the last collection left.
func (m *memoryLimit) update() {
	metrics.Read(m.samples)
	v := make([]uint64, len(m.samples))
	for i, s := range m.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return // not in this runtime: leave the limit alone
		}
		v[i] = s.Value.Uint64()
	}
	total, released, free, objects, live := v[0], v[1], v[2], v[3], v[4]
	// Not garbage: everything mapped and not released, less free heap
	// spans and the garbage among the heap objects.
	garbage := objects - min(live, objects)
	inUse := total - min(released+free+garbage, total)
	debug.SetMemoryLimit(memTarget(inUse, m.headroom, m.floor))
}

func (m *memoryLimit) stop() {
	if m.stopped.Swap(true) {
		return
	}
	debug.SetMemoryLimit(m.prev)
}
