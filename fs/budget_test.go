package fs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pbsfs/datastore"
	"pbsfs/index"
	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// evilBlocks is how many 128 KiB blocks a crafted frame has: 16 MiB of
// output (blobs may have up to 128 MiB; an eighth keeps the test quick,
// and the budget below is scaled alike).
const evilBlocks = 128

// memSampler records the peak of the Go heap (in-use spans) while it runs.
type memSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak atomic.Uint64
}

func sampleMemory() *memSampler {
	s := &memSampler{stop: make(chan struct{})}
	s.done.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if v := ms.HeapInuse; v > s.peak.Load() {
				s.peak.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	return s
}

func (s *memSampler) finish() uint64 {
	close(s.stop)
	s.done.Wait()
	return s.peak.Load()
}

// peakRSS resets the process's peak resident size (clear_refs 5) when
// reset is set, and returns VmHWM in bytes.
func peakRSS(t *testing.T, reset bool) uint64 {
	t.Helper()
	if reset {
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			t.Fatalf("reset peak RSS: %v", err)
		}
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// TestMountMaliciousDecodesStayInBudget: 32 concurrent readers, through a
// real mount, of crafted blob archives, chunks and manifests whose 512-byte
// zstd frames each decode to 16 MiB: the process stays within the store's
// decode budget (peak heap and peak RSS, printed against the same readers
// of good files). Readers beyond the budget get EIO; the crafted chunks
// and manifests never decode to anything valid.
func TestMountMaliciousDecodesStayInBudget(t *testing.T) {
	const n = 32
	// Room for one crafted decode at a time (16 MiB), and a little more.
	const budget = 24 << 20
	base := t.TempDir() + "/store"
	if err := datastore.Create(base, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := datastore.Open(base, datastore.Options{
		Lock:         lock.Config{Scheme: lock.Run, Dir: t.TempDir(), Store: "test", UID: -1, GID: -1},
		Archives:     datastore.ArchiveOptions{Enabled: true, BlobCacheBytes: 1 << 20, CacheBytes: 4 << 20},
		DecodeBudget: budget,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	e := &env{t: t, ctx: t.Context(), fs: New(w, Options{}), store: w, base: base}
	evil := testsupport.BombBlob(evilBlocks, true) // 512 bytes that decode to 16 MiB
	good, err := manifest.EncodeBlob(bytes.Repeat([]byte("cores: 2\n"), 100), true)
	if err != nil {
		t.Fatal(err)
	}
	// One snapshot lists n crafted blob archives, n good ones, and a
	// stream of n crafted chunks.
	sn := datastore.Snapshot{Group: datastore.Group{Type: "ct", ID: "666"}, Time: tFirst}
	if err := w.CreateGroup(sn.Group, "root@pam"); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var infos []manifest.FileInfo
	addBlob := func(name string, raw []byte) {
		sum := fmt.Sprintf("%x", sha256.Sum256(raw))
		infos = append(infos, manifest.FileInfo{Filename: name, CryptMode: "none", Size: uint64(len(raw)), Csum: sum})
		files[name] = raw
	}
	dx := &index.Dynamic{Ctime: 1}
	for i := range n {
		addBlob(fmt.Sprintf("evil%02d.conf.blob", i), evil)
		addBlob(fmt.Sprintf("good%02d.conf.blob", i), good)
		// A chunk file is found by its digest; this one's content is
		// the crafted blob whatever the digest says.
		var d [32]byte
		d[0], d[31] = byte(i), 0xee
		p := e.base + "/" + index.ChunkPath(d)
		if err := os.MkdirAll(p[:strings.LastIndexByte(p, '/')], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, evil, 0o644); err != nil {
			t.Fatal(err)
		}
		dx.Entries = append(dx.Entries, index.DynamicEntry{End: uint64(i+1) << 22, Digest: d})
	}
	csum, size := dx.ComputeCsum()
	infos = append(infos, manifest.FileInfo{Filename: "root.pxar.didx", CryptMode: "none", Size: size, Csum: fmt.Sprintf("%x", csum)})
	files["root.pxar.didx"] = dx.Encode()
	m, err := manifest.New("ct", "666", 1717597321, infos)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSnapshot(sn, m, files); err != nil {
		t.Fatal(err)
	}
	// n snapshots whose manifests are crafted.
	for i := range n {
		esn := datastore.Snapshot{Group: datastore.Group{Type: "ct", ID: "667"}, Time: fmt.Sprintf("2024-01-01T00:00:%02dZ", i)}
		if err := w.MakeSnapshotDir(esn); err != nil {
			if err := w.CreateGroup(esn.Group, "root@pam"); err != nil {
				t.Fatal(err)
			}
			if err := w.MakeSnapshotDir(esn); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(e.base+"/"+esn.Dir()+"/"+datastore.ManifestName, evil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mnt := mountEnv(t, e)
	dir := "ct/666/" + tFirst

	run := func(what, script string) (heap, rss uint64) {
		t.Helper()
		runtime.GC()
		debug.FreeOSMemory()
		base := sampleMemory()
		time.Sleep(5 * time.Millisecond)
		before := base.finish()
		s := sampleMemory()
		peakRSS(t, true)
		out, _ := sh(t, mnt, script)
		rss = peakRSS(t, false)
		heap = s.finish()
		t.Logf("%-22s peak heap %4d MiB (before %3d MiB), peak RSS %4d MiB; %2d readers succeeded",
			what, heap>>20, before>>20, rss>>20, strings.Count(out, "ok"))
		return heap, rss
	}
	par := func(glob, cmd string) string {
		return "for f in " + glob + "; do (" + cmd + " \"$f\" >/dev/null 2>&1 && echo ok) & done; wait"
	}
	goodHeap, goodRSS := run("good blobs", par(dir+"/good*.conf", "cat"))
	var worstHeap, worstRSS uint64
	for _, c := range []struct{ what, script string }{
		{"crafted blob archives", par(dir+"/evil*.conf", "head -c1")},
		{"crafted chunks", "for i in $(seq 0 31); do (dd if=" + dir + "/root.pxar bs=4M skip=$i count=1 >/dev/null 2>&1 && echo ok) & done; wait"},
		{"crafted manifests", par("ct/667/2024*/manifest.json", "cat") + "; " + par("ct/667/2024*/notes", "cat")},
	} {
		h, r := run(c.what, c.script)
		worstHeap, worstRSS = max(worstHeap, h), max(worstRSS, r)
	}
	t.Logf("decode budget %d MiB; worst peak heap %d MiB (good files: %d MiB), worst peak RSS %d MiB (good files: %d MiB)",
		uint64(budget)>>20, worstHeap>>20, goodHeap>>20, worstRSS>>20, goodRSS>>20)
	if worstHeap > goodHeap+budget {
		t.Errorf("peak heap %d MiB exceeds the good-file peak (%d MiB) plus the decode budget (%d MiB)", worstHeap>>20, goodHeap>>20, budget>>20)
	}
	if raceEnabled {
		t.Log("race detector on: its shadow memory is resident too, so peak RSS is not checked")
	} else if worstRSS > goodRSS+budget {
		t.Errorf("peak RSS %d MiB exceeds the good-file peak (%d MiB) plus the decode budget (%d MiB)", worstRSS>>20, goodRSS>>20, budget>>20)
	}
}
