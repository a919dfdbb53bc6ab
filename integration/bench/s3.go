package main

// The S3 workloads (--only s3, issue #17). A real SeaweedFS server
// (s3store/s3test, binary from $PBSFS_WEED) holds bucket "bench" with two
// datastores laid out as PBS 4 lays them out (s3store.Upload):
//
//   - "walk": demo.Large's store of --s3-snapshots snapshots (manifests and
//     owners, no chunks), the one the snapshot walks use;
//   - "image": one snapshot with a fixed-index disk image of
//     --s3-image-chunks distinct 4 MiB chunks.
//
// Measured, with the systems alternating within each round:
//
//   - walk (getdents + lstat of every entry), cold (fresh mount, dropped
//     kernel caches) and warm (again on the same mount), through
//     `pbsfs mount s3://bench/walk` against pbsfs over the same store on
//     local disk;
//   - the image read sequentially in 1 MiB preads through a fresh
//     `pbsfs mount s3://bench/image` against fetching, decoding and
//     verifying the same chunks one after the other in this process with
//     the same client (a fresh s3store.Bucket, default options).
//
// Requests per entry come from separate, untimed runs: FUSE requests from
// pbsfs --debug (requests.go), S3 requests counted by an s3test.Proxy the
// mount talks to instead of the server.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	"pbsfs/index"
	"pbsfs/lock"
	"pbsfs/manifest"
	"pbsfs/s3store"
	"pbsfs/s3store/s3test"
)

const (
	s3Bucket     = "bench"
	s3WalkStore  = "walk"
	s3ImageStore = "image"
)

// s3ImageTarget is issue #17's goal: sequential image reads through an S3
// mount at ≥ 80 % of the speed of fetching and decoding the same chunks
// in-process with the same client.
var s3ImageTarget = target{1 / 0.8, "≥0.8× in-process speed (≤1.25× time)"}

// s3Data is the server, the stores and what the S3 workloads found.
type s3Data struct {
	srv        *s3test.Server
	proxy      *s3test.Proxy
	walkLocal  string // the walk store on local disk (the baseline mounts it)
	imageLocal string
	image      *index.Fixed
	viaProxy   bool // mounts talk to the proxy (request counting)
	snapshots  int
	gen        []string // how the stores were made, for the report
	reqs       [][]string
	entries    int // entries of a walk
}

func (d *s3Data) endpoint() s3store.Endpoint {
	url := d.srv.Endpoint()
	if d.viaProxy {
		url = d.proxy.Endpoint()
	}
	return s3store.Endpoint{URL: url, PathStyle: true,
		Credentials: s3store.Credentials{AccessKey: d.srv.AccessKey, SecretKey: s3store.NewSecret(d.srv.SecretKey)}}
}

func s3Source(store string) string { return "s3://" + s3Bucket + "/" + store }

// isS3Source reports whether a mount's store is a bucket.
func isS3Source(store string) bool { return strings.HasPrefix(store, "s3://") }

func (d *s3Data) imageRel() string { return "vm/100/" + archiveSnap + "/drive-scsi0.img" }

// s3MountArgs are the pbsfs mount arguments and environment for a bucket
// store (credentials in the environment, never on the command line).
func (b *bench) s3MountArgs(store string) (args, env []string) {
	d := b.s3
	e := d.endpoint()
	args = []string{"--s3-endpoint", e.URL, "--s3-path-style"}
	env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+d.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+d.srv.SecretKey)
	return args, env
}

// s3ImageChunks is the image's size in 4 MiB chunks.
func (b *bench) s3ImageChunks() int {
	if b.cfg.s3ImageChunks > 0 {
		return b.cfg.s3ImageChunks
	}
	if b.cfg.quick {
		return 4
	}
	return 16
}

// generateS3 starts the server and fills the bucket.
func (b *bench) generateS3(ctx context.Context) error {
	srv := &s3test.Server{}
	t0 := time.Now()
	if err := srv.Up(); err != nil {
		return fmt.Errorf("s3: the S3 server: %w", err)
	}
	b.cl.add("stop the S3 server", func() error { srv.Close(); return nil })
	d := &s3Data{srv: srv, snapshots: b.cfg.s3Snapshots}
	fmt.Printf("s3: weed server up at %s in %.1f s\n", srv.Endpoint(), time.Since(t0).Seconds())

	var err error
	if d.walkLocal, err = b.generate(ctx, walkSpec(d.snapshots)); err != nil {
		return err
	}
	d.imageLocal = filepath.Join(b.tmp, "stores", "s3-image")
	if err := os.MkdirAll(filepath.Dir(d.imageLocal), 0o755); err != nil {
		return err
	}
	if err := datastore.Create(d.imageLocal, datastore.CreateOptions{}); err != nil {
		return fmt.Errorf("s3 image store: %w", err)
	}
	st, err := datastore.Open(d.imageLocal, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: b.lockDir, Store: "s3-image", UID: -1, GID: -1}})
	if err != nil {
		return fmt.Errorf("s3 image store: %w", err)
	}
	d.image, _, err = demo.WriteImageSnapshot(st, "100", b.s3ImageChunks())
	st.Close()
	if err != nil {
		return err
	}
	for _, s := range []struct{ store, dir string }{{s3WalkStore, d.walkLocal}, {s3ImageStore, d.imageLocal}} {
		w, err := s3store.New(d.endpoint(), s3store.Location{Bucket: s3Bucket, Store: s.store}, s3store.Options{Timeout: time.Minute})
		if err != nil {
			return err
		}
		t0 := time.Now()
		err = w.CreateBucket(ctx)
		var us s3store.UploadStats
		if err == nil {
			us, err = s3store.Upload(ctx, w, s.dir, "pbs-bench")
		}
		w.Close()
		if err != nil {
			return fmt.Errorf("s3: upload %s: %w", s.store, err)
		}
		line := fmt.Sprintf("`%s`: %s metadata objects, %d namespace markers, %d chunks (%s) uploaded in %.1f s (s3store.Upload, 8 PUTs at once)",
			s3Source(s.store), thousands(us.Metadata), us.Namespaces, us.Chunks, humanBytes(us.Bytes), time.Since(t0).Seconds())
		d.gen = append(d.gen, line)
		fmt.Println("s3: " + line)
	}
	if d.proxy, err = s3test.NewProxy(srv.Endpoint()); err != nil {
		return err
	}
	b.cl.add("stop the S3 proxy", func() error { d.proxy.Close(); return nil })
	syscall.Sync()
	b.s3 = d
	return nil
}

// benchS3 runs the S3 workloads.
func (b *bench) benchS3(ctx context.Context) error {
	if err := b.benchS3Walk(ctx); err != nil {
		return err
	}
	if err := b.benchS3Image(ctx); err != nil {
		return err
	}
	return b.s3Requests(ctx)
}

// benchS3Walk: cold and warm walks of the bucket's store through an S3
// mount against pbsfs over the same store on local disk. Both mount with
// --no-archives (demo.Large's manifests list archives it does not write).
func (b *bench) benchS3Walk(ctx context.Context) error {
	d := b.s3
	what := snapshots(d.snapshots)
	local := "pbsfs, local store"
	cold := b.newResult("s3-walk-cold", "S3: walk, cold ("+what+")", d.snapshots, sysRaw)
	warm := b.newResult("s3-walk-warm", "S3: walk, warm ("+what+")", d.snapshots, sysRaw)
	cold.baseName, warm.baseName = local, local
	counts := map[system]int{}
	job1 := func(name string, col system, store string) job {
		return job{name, func(ctx context.Context, r int) error {
			return b.withMount(ctx, sysPbsfs, store, "S3: walk, "+name, func(m *mount) (err error) {
				counts[col], err = b.walkColdWarm(ctx, m, col, cold, warm)
				return err
			})
		}}
	}
	jobs := []job{job1("local store", sysRaw, d.walkLocal), job1("bucket", sysPbsfs, s3Source(s3WalkStore))}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("S3 walk: %w", err)
	}
	if counts[sysRaw] != counts[sysPbsfs] {
		return fmt.Errorf("S3 walk: the bucket mount shows %d entries, the local one %d", counts[sysPbsfs], counts[sysRaw])
	}
	d.entries = counts[sysPbsfs]
	warm.note = fmt.Sprintf("%s entries stat'ed per walk through either mount", thousands(d.entries))
	if b.cold {
		b.finish(cold)
	}
	b.finish(warm)
	return nil
}

// benchS3Image: the image read sequentially through a fresh S3 mount (its
// chunk caches empty: every chunk comes from the bucket) against fetching
// and decoding the same chunks in-process with a fresh s3store.Bucket.
func (b *bench) benchS3Image(ctx context.Context) error {
	d := b.s3
	size := int64(d.image.Size)
	res := b.newResult("s3-image-seq", fmt.Sprintf("S3: sequential read of a %d MiB disk image (vs in-process fetch + decode)", size>>20), 0, sysRaw)
	res.baseName = "in-process fetch + decode"
	res.tgt = &s3ImageTarget
	jobs := []job{
		{"in-process", func(ctx context.Context, r int) error {
			bk, err := s3store.New(d.endpoint(), s3store.Location{Bucket: s3Bucket, Store: s3ImageStore}, s3store.Options{})
			if err != nil {
				return err
			}
			defer bk.Close()
			t, err := timed(func() error { return fetchDecode(ctx, bk, d.image) })
			if err != nil {
				return err
			}
			res.add(sysRaw, t)
			return nil
		}},
		{"pbsfs", func(ctx context.Context, r int) error {
			return b.withMount(ctx, sysPbsfs, s3Source(s3ImageStore), "S3: sequential image read", func(m *mount) error {
				f, err := os.Open(filepath.Join(m.dir, d.imageRel()))
				if err != nil {
					return err
				}
				defer f.Close()
				buf := make([]byte, 1<<20)
				var n int64
				t, err := timed(func() (err error) { n, err = readSeq(ctx, f, buf); return err })
				if err != nil {
					return err
				}
				if n != size {
					return fmt.Errorf("%s: read %d bytes, want %d", d.imageRel(), n, size)
				}
				res.add(sysPbsfs, t)
				return nil
			})
		}},
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("S3 image read: %w", err)
	}
	mbps := func(sys system) string {
		v, ok := res.med(sys)
		if !ok || v <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f MB/s", float64(size)/v/1e6)
	}
	res.note = fmt.Sprintf("%s through the S3 mount, %s fetching and decoding in-process (medians); %d chunks of 4 MiB, one cold pass per round; target %s",
		mbps(sysPbsfs), mbps(sysRaw), len(d.image.Digests), s3ImageTarget.desc)
	b.finish(res)
	fmt.Println("  " + res.note)
	return nil
}

// fetchDecode fetches, decodes and verifies every chunk of fx from the
// bucket, one after the other: what the mount does per chunk.
func fetchDecode(ctx context.Context, bk *s3store.Bucket, fx *index.Fixed) error {
	for _, dg := range fx.Digests {
		raw, err := bk.ReadChunk(ctx, dg, 64<<20)
		if err != nil {
			return err
		}
		data, err := manifest.DecodeBlob(raw)
		if err != nil {
			return fmt.Errorf("chunk %x: %w", dg, err)
		}
		if sha256.Sum256(data) != dg {
			return fmt.Errorf("chunk %x: digest mismatch", dg)
		}
	}
	return nil
}

// s3Requests counts, in untimed runs through the counting proxy, the FUSE
// and S3 requests of a cold and a warm walk (per entry) and of the image
// read (per chunk), beside pbsfs over the local store's FUSE requests.
func (b *bench) s3Requests(ctx context.Context) error {
	d := b.s3
	d.viaProxy = true
	defer func() { d.viaProxy = false }()
	type counted struct{ fuseCold, fuseWarm, s3Cold, s3Warm string }
	walkCount := func(store string) (counted, error) {
		var out counted
		m, c, err := b.mountCounting(ctx, sysPbsfs, store)
		if err != nil {
			return out, err
		}
		err = func() error {
			if err := b.coldStart(); err != nil {
				return err
			}
			f0, p0 := c.snapshot(), d.proxy.Requests()
			n, err := walk(ctx, m.dir)
			if err != nil {
				return err
			}
			f1, p1 := c.snapshot(), d.proxy.Requests()
			if _, err := walk(ctx, m.dir); err != nil {
				return err
			}
			f2, p2 := c.snapshot(), d.proxy.Requests()
			out.fuseCold, out.fuseWarm = perEntry(diffOps(f0, f1), n), perEntry(diffOps(f1, f2), n)
			out.s3Cold = fmt.Sprintf("%.3f (%s requests)", float64(p1-p0)/float64(n), thousands(int(p1-p0)))
			out.s3Warm = fmt.Sprintf("%.3f (%s requests)", float64(p2-p1)/float64(n), thousands(int(p2-p1)))
			return nil
		}()
		if cerr := m.close(); err == nil {
			err = cerr
		}
		return out, err
	}
	local, err := walkCount(d.walkLocal)
	if err != nil {
		return fmt.Errorf("request count, local walk: %w", err)
	}
	bucket, err := walkCount(s3Source(s3WalkStore))
	if err != nil {
		return fmt.Errorf("request count, bucket walk: %w", err)
	}
	d.reqs = [][]string{
		{"walk, cold", local.fuseCold, bucket.fuseCold, bucket.s3Cold},
		{"walk, warm", local.fuseWarm, bucket.fuseWarm, bucket.s3Warm},
	}

	// The image: FUSE and S3 requests per chunk, against the in-process
	// reader's S3 requests.
	chunks := len(d.image.Digests)
	bk, err := s3store.New(d.endpoint(), s3store.Location{Bucket: s3Bucket, Store: s3ImageStore}, s3store.Options{})
	if err != nil {
		return err
	}
	p0 := d.proxy.Requests()
	err = fetchDecode(ctx, bk, d.image)
	inproc := d.proxy.Requests() - p0
	bk.Close()
	if err != nil {
		return err
	}
	m, c, err := b.mountCounting(ctx, sysPbsfs, s3Source(s3ImageStore))
	if err != nil {
		return err
	}
	err = func() error {
		f0, p0 := c.snapshot(), d.proxy.Requests()
		f, err := os.Open(filepath.Join(m.dir, d.imageRel()))
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := readSeq(ctx, f, make([]byte, 1<<20)); err != nil {
			return err
		}
		f1, p1 := c.snapshot(), d.proxy.Requests()
		d.reqs = append(d.reqs, []string{"image read, per 4 MiB chunk", "—", perEntry(diffOps(f0, f1), chunks),
			fmt.Sprintf("%.2f (in-process: %.2f)", float64(p1-p0)/float64(chunks), float64(inproc)/float64(chunks))})
		return nil
	}()
	if cerr := m.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("request count, image read: %w", err)
	}
	for _, r := range d.reqs {
		fmt.Printf("S3 requests, %s: FUSE local %s; FUSE bucket %s; S3 %s\n", r[0], r[1], r[2], r[3])
	}
	return nil
}

// s3Report writes the S3 section of BENCHMARKS.md.
func (b *bench) s3Report(w func(string, ...any)) {
	d := b.s3
	w("## S3 datastores (issue #17)\n\n")
	w("A SeaweedFS `weed server` on this machine (loopback, so no network latency: what is measured is pbsfs's and the client's own cost per request) ")
	w("holds bucket `%s`:\n\n", s3Bucket)
	for _, g := range d.gen {
		w("- %s\n", g)
	}
	w("\n")
	if len(d.reqs) > 0 {
		w("### Requests\n\n")
		w("Counted in separate, untimed runs: FUSE requests from `pbsfs mount --debug`, S3 requests (listing pages, GETs, retries) by an `s3test.Proxy` between the mount and the server. ")
		w("Walks per entry (%s), the image per chunk.\n\n", thousands(d.entries))
		w("| workload | FUSE, pbsfs over the local store | FUSE, pbsfs over the bucket | S3 requests, pbsfs over the bucket |\n|---|---|---|---|\n")
		for _, r := range d.reqs {
			w("| %s |\n", strings.Join(r, " | "))
		}
		w("\n")
	}
	w("### How the S3 figures are taken\n\n")
	w("- **Walk**: getdents + lstat of every entry through `pbsfs mount --no-archives --s3-endpoint URL --s3-path-style s3://%s/%s` ", s3Bucket, s3WalkStore)
	w("against `pbsfs mount --no-archives` of the same store on local disk; cold = fresh mount (empty caches) and `drop_caches`, warm = again on the same mount.\n")
	w("- **Image**: a fresh mount of `s3://%s/%s`, `%s` read once in 1 MiB preads (every chunk fetched from the bucket), ", s3Bucket, s3ImageStore, d.imageRel())
	w("against a fresh `s3store.Bucket` (default options, as the mount's) fetching every chunk with `ReadChunk`, decoding and verifying it (CRC, zstd, SHA-256) one after the other in this process.\n\n")
}
