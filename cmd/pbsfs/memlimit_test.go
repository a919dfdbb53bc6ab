package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestMemTarget(t *testing.T) {
	for _, c := range []struct {
		inUse, headroom, floor uint64
		want                   int64
	}{
		{10 << 20, 64 << 20, 256 << 20, 256 << 20}, // small heaps: the floor (GOGC paces them)
		{300 << 20, 64 << 20, 256 << 20, 364 << 20},
		{1 << 63, 1 << 63, 0, 1<<63 - 1}, // no overflow
	} {
		if got := memTarget(c.inUse, c.headroom, c.floor); got != c.want {
			t.Errorf("memTarget(%d, %d, %d) = %d, want %d", c.inUse, c.headroom, c.floor, got, c.want)
		}
	}
	if memHeadroom(0) != memMinHeadroom || memHeadroom(-1) != memMinHeadroom || memHeadroom(512<<20) != 512<<20 {
		t.Error("memHeadroom: the chunk cache, at least memMinHeadroom")
	}
}

// The limit follows the live heap: with a live heap far above the floor it
// stays a headroom above it (a limit below the live heap would keep the
// collector running, held back only by the runtime's CPU cap), and
// allocating garbage costs about a collection per headroom's worth. Counts,
// not times.
func TestMemoryLimitFollowsLiveHeap(t *testing.T) {
	const headroom, floor, live, garbage = 16 << 20, 8 << 20, 96 << 20, 512 << 20
	prev := debug.SetMemoryLimit(-1)
	m := newMemoryLimit(headroom, floor)
	m.arm()
	m.update() // the limit for the heap before the live data: below it
	defer func() {
		m.stop()
		if got := debug.SetMemoryLimit(-1); got != prev {
			t.Errorf("stop left the limit at %d, not %d", got, prev)
		}
	}()
	ballast := make([][]byte, live>>20)
	for i := range ballast {
		ballast[i] = make([]byte, 1<<20)
	}
	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := cycles()
	var sink []byte
	for range garbage / (64 << 10) {
		sink = make([]byte, 64<<10)
	}
	n := cycles() - before
	runtime.KeepAlive(sink)
	runtime.KeepAlive(ballast)
	limit := debug.SetMemoryLimit(-1)
	t.Logf("%d MiB of garbage over %d MiB live: %d collections, limit %d MiB", garbage>>20, live>>20, n, limit>>20)
	if allowed := uint64(2*garbage/headroom + 4); n > allowed {
		t.Errorf("%d collections for %d MiB of garbage (a headroom of %d MiB allows %d)", n, garbage>>20, headroom>>20, allowed)
	}
	if limit < live+headroom {
		t.Errorf("limit %d MiB below the live heap plus the headroom", limit>>20)
	}
}

// GOMEMLIMIT in the environment is the user's limit: kept.
func TestMemoryLimitKeepsGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	prev := debug.SetMemoryLimit(-1)
	stop := startMemoryLimit(slog.New(slog.DiscardHandler), 64<<20)
	runtime.GC()
	runtime.GC()
	got := debug.SetMemoryLimit(-1)
	stop()
	if got != prev {
		t.Errorf("limit %d, want the environment's %d", got, prev)
	}
}
