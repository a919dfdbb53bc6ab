package integration

// Benchmarks of archive reads through the mount, against decoding the same
// chunks directly in this process, in the same run:
//
//	go test -run '^$' -bench Archive -count 5 ./integration/
//
// BenchmarkArchiveSeq alternates direct and mount passes inside every
// iteration and reports ratio = mount MB/s ÷ direct MB/s (target ≥ 0.7).

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/index"
	"pbsfs/internal/testsupport"
	"pbsfs/lock"
	"pbsfs/manifest"
)

// benchMount is a pbsfs mount for benchmarks (the test harness wants a
// *testing.T).
type benchMount struct {
	cmd    *exec.Cmd
	dir    string
	stderr *syncBuffer
	done   chan struct{}
}

func startBenchMount(tb testing.TB, store string, extra ...string) *benchMount {
	tb.Helper()
	if buildErr != nil {
		tb.Fatalf("building pbsfs failed: %v", buildErr)
	}
	testsupport.RequireFUSE(tb)
	m := &benchMount{dir: filepath.Join(tb.TempDir(), "mnt"), stderr: &syncBuffer{}, done: make(chan struct{})}
	os.Mkdir(m.dir, 0o755)
	args := append([]string{"mount", "--read-only", "--lock-scheme", "run", "--lock-dir", tb.TempDir(), "--store", storeName}, extra...)
	m.cmd = exec.Command(pbsfsBin, append(args, store, m.dir)...)
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	tb.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(exitTimeout):
			m.cmd.Process.Kill()
			<-m.done
			exec.Command("fusermount3", "-u", "-z", m.dir).Run()
		}
	})
	deadline := time.Now().Add(mountTimeout)
	for !isMounted(m.dir) {
		select {
		case <-m.done:
			tb.Fatalf("pbsfs exited: %s", m.stderr)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not mounted: %s", m.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return m
}

// rss returns pbsfs's resident set size and its peak (VmRSS, VmHWM) in MiB.
func (m *benchMount) rss() (cur, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			cur = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return cur, peak
}

// benchImage writes vm/<id> with a disk image of n distinct 4 MiB chunks
// (demo.WriteImageSnapshot).
func benchImage(tb testing.TB, st *datastore.Store, id string, n int) (*index.Fixed, []byte) {
	tb.Helper()
	fx, img, err := demo.WriteImageSnapshot(st, id, n)
	if err != nil {
		tb.Fatal(err)
	}
	return fx, img
}

// dropPages asks the kernel to forget its cached pages of the file.
func dropPages(tb testing.TB, f *os.File) {
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		tb.Fatal(err)
	}
}

// archiveBenchStore writes the benchmark store and mounts it with
// --archives and the flags in $PBSFS_BENCH_EXTRA (e.g. "--cpuprofile
// /tmp/cpu.prof" to profile, "--chunk-cache 1024" to measure the FUSE
// transfer alone): vm/100 has a 256 MiB image of distinct chunks (four times the
// default chunk cache, so a sequential pass decodes every chunk again),
// vm/101 a 32 MiB one (fits in the cache).
func archiveBenchStore(b *testing.B) (store string, big *index.Fixed, bigImg, smallImg []byte, m *benchMount) {
	store = filepath.Join(b.TempDir(), "store")
	if err := datastore.Create(store, datastore.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	st, err := datastore.Open(store, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: b.TempDir(), Store: storeName, UID: -1, GID: -1}})
	if err != nil {
		b.Fatal(err)
	}
	big, bigImg = benchImage(b, st, "100", 64)
	_, smallImg = benchImage(b, st, "101", 8)
	st.Close()
	return store, big, bigImg, smallImg, startBenchMount(b, store, append([]string{"--archives"}, strings.Fields(os.Getenv("PBSFS_BENCH_EXTRA"))...)...)
}

const (
	bigRel   = "vm/100/2024-06-05T14:22:01Z/drive-scsi0.img"
	smallRel = "vm/101/2024-06-05T14:22:01Z/drive-scsi0.img"
)

// BenchmarkArchiveSeq: each iteration runs three passes over the 256 MiB
// image, alternating in the same run:
//
//	direct  what pbsfs does per chunk, in this process, one goroutine: read
//	        the chunk file, check the CRC, decompress, SHA-256 against the
//	        index digest
//	mount   the image through the mount in 1 MiB reads (like cat), the
//	        kernel's pages dropped first; pbsfs's chunk cache is too small to
//	        help, so every chunk is decoded again
//	pages   the same with the kernel's page cache warm (OpenKeepCache): no
//	        request reaches pbsfs
//
// It reports the MB/s of each and ratio = mount ÷ direct, and pbsfs's RSS.
func BenchmarkArchiveSeq(b *testing.B) {
	store, big, bigImg, _, m := archiveBenchStore(b)
	f, err := os.Open(filepath.Join(m.dir, bigRel))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	readAll := func() int64 {
		var total int64
		for off := int64(0); ; off += 1 << 20 {
			n, err := f.ReadAt(buf, off)
			total += int64(n)
			if err != nil || n == 0 {
				return total
			}
		}
	}
	// Check the content once, untimed.
	h := sha256.New()
	for off := int64(0); ; off += 1 << 20 {
		n, err := f.ReadAt(buf, off)
		h.Write(buf[:n])
		if err != nil || n == 0 {
			break
		}
	}
	if want := sha256.Sum256(bigImg); !bytes.Equal(h.Sum(nil), want[:]) {
		b.Fatal("content differs")
	}
	directPass := func() {
		for _, d := range big.Digests {
			raw, err := os.ReadFile(filepath.Join(store, index.ChunkPath(d)))
			if err != nil {
				b.Fatal(err)
			}
			data, err := manifest.DecodeBlob(raw)
			if err != nil {
				b.Fatal(err)
			}
			if sha256.Sum256(data) != d {
				b.Fatal("digest")
			}
		}
	}
	directPass() // the chunk files in the page cache for both sides
	var direct, mount, pages time.Duration
	for b.Loop() {
		t0 := time.Now()
		directPass()
		direct += time.Since(t0)

		dropPages(b, f)
		t0 = time.Now()
		if n := readAll(); n != int64(len(bigImg)) {
			b.Fatalf("read %d bytes", n)
		}
		mount += time.Since(t0)

		t0 = time.Now()
		readAll()
		pages += time.Since(t0)
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * float64(len(bigImg)) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(direct), "direct-MB/s")
	b.ReportMetric(mbps(mount), "mount-MB/s")
	b.ReportMetric(mbps(pages), "pages-MB/s")
	b.ReportMetric(direct.Seconds()/mount.Seconds(), "ratio")
	cur, peak := m.rss()
	b.ReportMetric(cur, "RSS-MiB")
	b.ReportMetric(peak, "peakRSS-MiB")
}

// BenchmarkArchiveRandom4K: 4 KiB preads at random offsets of the 32 MiB
// image with O_DIRECT (so every one is a FUSE request), the image warm in
// pbsfs's chunk cache. Each iteration also preads 4 KiB of the snapshot's
// manifest.json the same way: the FUSE round trip with nothing to decode,
// the floor. Reported: archive-µs and floor-µs per pread.
func BenchmarkArchiveRandom4K(b *testing.B) {
	_, _, _, smallImg, m := archiveBenchStore(b)
	f, err := os.OpenFile(filepath.Join(m.dir, smallRel), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	mf, err := os.OpenFile(filepath.Join(m.dir, filepath.Dir(smallRel), "manifest.json"), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer mf.Close()
	warm := alignedBuf(1 << 20)
	for off := int64(0); off < int64(len(smallImg)); off += 1 << 20 {
		if _, err := f.ReadAt(warm, off); err != nil {
			b.Fatal(err)
		}
	}
	buf := alignedBuf(4096)
	rng := rand.New(rand.NewPCG(7, 7))
	var archive, floor time.Duration
	for b.Loop() {
		off := rng.Int64N(int64(len(smallImg))/4096) * 4096
		t0 := time.Now()
		n, err := f.ReadAt(buf, off)
		archive += time.Since(t0)
		if n != 4096 || err != nil || !bytes.Equal(buf, smallImg[off:off+4096]) {
			b.Fatalf("pread(%d): %d, %v", off, n, err)
		}
		t0 = time.Now()
		if _, err := mf.ReadAt(buf, 0); err != nil && err != io.EOF {
			b.Fatal(err)
		}
		floor += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(archive.Microseconds())/float64(b.N), "archive-µs")
	b.ReportMetric(float64(floor.Microseconds())/float64(b.N), "floor-µs")
	cur, peak := m.rss()
	b.ReportMetric(cur, "RSS-MiB")
	b.ReportMetric(peak, "peakRSS-MiB")
}

// alignedBuf returns a page-aligned buffer of n bytes (for O_DIRECT).
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := 4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)
	if off == 4096 {
		off = 0
	}
	return b[off : off+n]
}
