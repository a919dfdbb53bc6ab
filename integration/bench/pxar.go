package main

// The pxar workloads (--only pxar, issue #12): a generated root-file-system
// tree stored as a v1 and as a split archive, browsed through pbsfs's
// NAME.pxar/ directories, against bindfs over the same tree extracted on
// local disk and against decoding the archive in this process with package
// pxar over the datastore's chunk streams.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pbsfs/datastore"
	"pbsfs/demo"
	pbsfs "pbsfs/fs"
	"pbsfs/index"
	"pbsfs/lock"
	"pbsfs/manifest"
	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// pxarSnap is the snapshot time of every archive of the pxar store.
const pxarSnap = "2024-06-01T01:30:00Z"

// The archives of the pxar store: ct/300 the tree as v1, ct/301 as split,
// ct/302 one large file (split), ct/303 the large-entry-count tree (v1).
type pxarArchive struct {
	id    string
	split bool
	what  string
}

var (
	pxarV1    = pxarArchive{"300", false, "v1"}
	pxarSplit = pxarArchive{"301", true, "split"}
	pxarBig   = pxarArchive{"302", true, "split"}
	pxarMany  = pxarArchive{"303", false, "v1"}
)

func (a pxarArchive) snapshot() datastore.Snapshot {
	return datastore.Snapshot{Group: datastore.Group{Type: "ct", ID: a.id}, Time: pxarSnap}
}

// rel is the archive's directory in a pbsfs mount.
func (a pxarArchive) rel() string { return "ct/" + a.id + "/" + pxarSnap + "/root.pxar" }

// pxarData is the pxar store and the extracted tree.
type pxarData struct {
	store     string
	extracted string // the tree on local disk, for bindfs
	tree      *genTree
	entries   int   // below the root
	files     int   // regular files
	bytes     int64 // of all files
	bigSize   int64
	many      int // entries of the ct/303 tree (0 = none)
	genSecs   float64
	reused    bool
}

// pxarTargets are issue #12's goals, as time ratios.
var pxarTargets = map[string]target{
	"pxar-walk-warm":       {1.0, "≤1.0× bindfs"},
	"pxar-walk-cold-split": {2.0, "≤2× bindfs"},
	"pxar-walk-cold-v1":    {1.5, "≤1.5× decoding every chunk"},
	"pxar-cat-cold":        {1.5, "≤1.5× in-process decode"},
	"pxar-big-seq":         {1 / 0.8, "≥0.8× in-process speed (≤1.25× time)"},
}

// pxarRSSTarget is the peak RSS goal of a walk of 1,000,000 entries.
const pxarRSSTarget = 200 << 20

func (b *bench) pxarSpec() treeSpec {
	s := treeSpec{files: b.cfg.pxarFiles, dirs: b.cfg.pxarFiles / 20, bytes: b.cfg.pxarBytes, seed: 12}
	if s.bytes == 0 {
		s.bytes = int64(s.files) * (1 << 30) / 100000 // 1 GiB per 100,000 files
	}
	return s
}

// manySpec is the tree of the RSS walk: at least cfg.pxarMany entries
// (files, directories and symlinks), small files.
func (b *bench) manySpec() (treeSpec, error) {
	files := b.cfg.pxarMany * 100 / 110
	for {
		s := treeSpec{files: files, dirs: files / 20, bytes: int64(files) * 200, seed: 13}
		g, err := newGenTree(s)
		if err != nil {
			return s, err
		}
		n, _, _ := g.totals()
		if n >= b.cfg.pxarMany {
			return s, nil
		}
		files += (b.cfg.pxarMany-n)*100/110 + 1
	}
}

// generatePxar writes (or, with --stores, reuses) the pxar store and the
// extracted tree.
func (b *bench) generatePxar(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	spec := b.pxarSpec()
	name := fmt.Sprintf("pxar-%s-big%d-many%d-chunk%d", spec.key(), b.cfg.pxarBig, b.cfg.pxarMany, b.cfg.pxarChunk)
	base := filepath.Join(b.tmp, "stores", name)
	marker := ""
	if b.cfg.keepStores != "" {
		base = filepath.Join(b.cfg.keepStores, name)
		marker = base + ".complete"
	}
	tree, err := newGenTree(spec)
	if err != nil {
		return err
	}
	d := &pxarData{store: filepath.Join(base, "store"), extracted: filepath.Join(base, "tree"), tree: tree, bigSize: b.cfg.pxarBig}
	d.entries, d.files, d.bytes = tree.totals()
	var many treeSpec
	if b.cfg.pxarMany > 0 {
		if many, err = b.manySpec(); err != nil {
			return err
		}
		mt, err := newGenTree(many)
		if err != nil {
			return err
		}
		d.many, _, _ = mt.totals()
	}
	b.px = d
	if marker != "" {
		if _, err := os.Stat(marker); err == nil {
			d.reused = true
			fmt.Printf("store %s: reusing %s\n", name, base)
			return nil
		}
	}
	_ = os.RemoveAll(base)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	t := time.Now()
	fmt.Printf("store pxar: generating %s (%s entries, %s in %s files) as v1 and split, a %s file, and %s entries for the RSS walk...\n",
		spec, thousands(d.entries), humanBytes(d.bytes), thousands(d.files), humanBytes(d.bigSize), thousands(d.many))
	if err := datastore.Create(d.store, datastore.CreateOptions{}); err != nil {
		return fmt.Errorf("pxar store: %w", err)
	}
	st, err := datastore.Open(d.store, datastore.Options{Lock: lock.Config{Scheme: lock.Run, Dir: b.lockDir, Store: "bench", UID: -1, GID: -1}})
	if err != nil {
		return fmt.Errorf("pxar store: %w", err)
	}
	defer st.Close()
	big := &encoder.Node{Mode: pxar.ModeDir | 0o755, MtimeSec: treeEpoch, Children: []*encoder.Node{{
		Name: "big.img", Mode: pxar.ModeRegular | 0o600, MtimeSec: treeEpoch, Size: uint64(d.bigSize),
		Open: func() (io.ReadCloser, error) { return tree.content(-1, d.bigSize), nil },
	}}}
	jobs := []struct {
		a    pxarArchive
		root func() (*encoder.Node, error)
	}{
		{pxarV1, func() (*encoder.Node, error) { return tree.root(), nil }},
		{pxarSplit, func() (*encoder.Node, error) { return tree.root(), nil }},
		{pxarBig, func() (*encoder.Node, error) { return big, nil }},
	}
	if b.cfg.pxarMany > 0 {
		jobs = append(jobs, struct {
			a    pxarArchive
			root func() (*encoder.Node, error)
		}{pxarMany, func() (*encoder.Node, error) {
			mt, err := newGenTree(many)
			if err != nil {
				return nil, err
			}
			return mt.root(), nil
		}})
	}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		root, err := j.root()
		if err != nil {
			return err
		}
		if err := writePxarSnapshot(st, j.a, root, b.cfg.pxarChunk); err != nil {
			return err
		}
	}
	if err := extract(tree.root(), d.extracted); err != nil {
		return err
	}
	syscall.Sync() // no write-back during the measurements
	d.genSecs = time.Since(t).Seconds()
	if marker != "" {
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("store pxar: generated in %.0f s\n", d.genSecs)
	return nil
}

func writePxarSnapshot(st *datastore.Store, a pxarArchive, root *encoder.Node, chunkSize int) error {
	sn := a.snapshot()
	infos, files, err := demo.WriteFileArchive(st, demo.FileArchive{Name: "root", Root: root, Split: a.split, Ctime: 1717205400, ChunkSize: chunkSize})
	if err != nil {
		return err
	}
	m, err := manifest.New("ct", a.id, 1717205400, infos)
	if err != nil {
		return err
	}
	if err := st.CreateGroup(sn.Group, "root@pam"); err != nil {
		return err
	}
	return st.WriteSnapshot(sn, m, files)
}

// inProcess opens archive a of the pxar store in this process, with a
// fresh datastore handle (so an empty chunk cache), as pbsfs does.
func (b *bench) inProcess(a pxarArchive) (*pxar.Archive, func(), error) {
	st, err := datastore.Open(b.px.store, datastore.Options{ReadOnly: true, Archives: datastore.ArchiveOptions{Enabled: true},
		Lock: lock.Config{Scheme: lock.Run, Dir: b.lockDir, Store: "bench", UID: -1, GID: -1}})
	if err != nil {
		return nil, nil, err
	}
	arch, _, _, err := st.OpenPxar(a.snapshot(), "root.pxar")
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return arch, func() { st.Close() }, nil
}

// pxarWalk is the walk workload done with package pxar: ReadDir of every
// directory (which decodes every entry's metadata, as lstat needs).
func pxarWalk(ctx context.Context, arch *pxar.Archive) (int, error) {
	root, err := arch.Root()
	if err != nil {
		return 0, err
	}
	n := 0
	stack := []*pxar.Entry{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids, err := arch.ReadDir(d)
		if err != nil {
			return n, err
		}
		for _, k := range kids {
			n++
			if k.IsDir() {
				stack = append(stack, k)
			}
		}
	}
	return n, nil
}

// pxarCatAll reads every regular file to its end with package pxar, in
// 128 KiB reads (as cat does), walking as pxarWalk.
func pxarCatAll(ctx context.Context, arch *pxar.Archive) (files int, bytes int64, err error) {
	root, err := arch.Root()
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 128<<10)
	stack := []*pxar.Entry{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return files, bytes, err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids, err := arch.ReadDir(d)
		if err != nil {
			return files, bytes, err
		}
		for _, k := range kids {
			switch {
			case k.IsDir():
				stack = append(stack, k)
			case k.Kind == pxar.KindFile && !k.Hardlink:
				var off int64
				for {
					n, err := arch.ReadAt(k, buf, off)
					off += int64(n)
					if errors.Is(err, io.EOF) || (err == nil && n == 0) {
						break
					}
					if err != nil {
						return files, bytes, err
					}
				}
				if off != int64(k.Size) {
					return files, bytes, fmt.Errorf("%s: read %d bytes, size %d", k.Name, off, k.Size)
				}
				files++
				bytes += off
			}
		}
	}
	return files, bytes, nil
}

// catAll is `find DIR -type f | xargs cat`, in-process and single-
// threaded: the walk (getdents, lstat) plus open, 128 KiB reads to the end
// and close of every regular file.
func catAll(ctx context.Context, dir string) (files int, bytes int64, err error) {
	buf := make([]byte, 128<<10)
	stack := []string{dir}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return files, bytes, err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		names, err := readDir(d)
		if err != nil {
			return files, bytes, err
		}
		for _, name := range names {
			p := d + "/" + name
			fi, err := os.Lstat(p)
			if err != nil {
				return files, bytes, err
			}
			switch {
			case fi.IsDir():
				stack = append(stack, p)
			case fi.Mode().IsRegular():
				n, err := readWhole(p, buf)
				if err != nil {
					return files, bytes, err
				}
				if n != fi.Size() {
					return files, bytes, fmt.Errorf("%s: read %d bytes, lstat says %d", p, n, fi.Size())
				}
				files++
				bytes += n
			}
		}
	}
	return files, bytes, nil
}

func readWhole(p string, buf []byte) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", p, err)
		}
	}
}

// decodeChunks reads, decodes and verifies every chunk of the dynamic
// index file rel of the store, one after the other: what any reader of
// the whole archive must do at least.
func decodeChunks(store, rel string) (int, error) {
	raw, err := os.ReadFile(filepath.Join(store, rel))
	if err != nil {
		return 0, err
	}
	dx, err := index.ParseDynamic(raw)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", rel, err)
	}
	for _, e := range dx.Entries {
		raw, err := os.ReadFile(filepath.Join(store, index.ChunkPath(e.Digest)))
		if err != nil {
			return 0, err
		}
		data, err := manifest.DecodeBlob(raw)
		if err != nil {
			return 0, err
		}
		if sha256.Sum256(data) != e.Digest {
			return 0, fmt.Errorf("chunk %x: digest mismatch", e.Digest)
		}
	}
	return len(dx.Entries), nil
}

// storedChunkBytes sums the sizes of the chunk files the dynamic index
// file rel of the store names (each chunk once).
func storedChunkBytes(store, rel string) (bytes int64, chunks int, err error) {
	raw, err := os.ReadFile(filepath.Join(store, rel))
	if err != nil {
		return 0, 0, err
	}
	dx, err := index.ParseDynamic(raw)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", rel, err)
	}
	seen := map[[32]byte]bool{}
	for _, e := range dx.Entries {
		if seen[e.Digest] {
			continue
		}
		seen[e.Digest] = true
		fi, err := os.Stat(filepath.Join(store, index.ChunkPath(e.Digest)))
		if err != nil {
			return 0, 0, err
		}
		bytes += fi.Size()
	}
	return bytes, len(seen), nil
}

// readChars returns rchar of /proc/PID/io (bytes the process read through
// read-like system calls, from the page cache or not); 0 for pid 0.
func readChars(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("read bytes of pid %d: %w", pid, err)
	}
	return parseRchar(data)
}

// parseRchar finds "rchar: N" in a /proc/PID/io text.
func parseRchar(text []byte) (int64, error) {
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no rchar line in /proc/PID/io")
}

// walkFloorNote says what the cold v1 walk costs beyond the FUSE round
// trips: the cold split walk makes the same requests (the requests table)
// and decodes one small chunk, so it is the walk's floor; the bytes pbsfs
// read during the cold v1 walk, against the archive's chunk files, say how
// often each chunk was loaded.
func walkFloorNote(v1, split *result, read []float64, stored int64, chunks int) string {
	var parts []string
	v, okV := v1.med(sysPbsfs)
	sp, okS := split.med(sysPbsfs)
	dec, okD := v1.med(sysRaw)
	if okV && okS && okD && sp > 0 && dec > 0 {
		parts = append(parts, fmt.Sprintf("the cold split walk (same FUSE requests, one small chunk decoded) is %.2f× decode every chunk, the v1 walk %.2f× the split walk (medians of the same rounds)", sp/dec, v/sp))
	}
	if len(read) > 0 && stored > 0 {
		m := median(read)
		parts = append(parts, fmt.Sprintf("pbsfs read %s during a cold v1 walk (median), the archive's %d chunk files hold %s: each chunk loaded %.2f× on average", humanBytes(int64(m)), chunks, humanBytes(stored), m/float64(stored)))
	}
	return strings.Join(parts, "; ")
}

// cpA copies dir with `cp -a` to a fresh directory below b.tmp (removed
// again, untimed, by the returned function).
func (b *bench) cpA(ctx context.Context, dir string) (float64, func() error, error) {
	b.mounts++
	dst := filepath.Join(b.tmp, fmt.Sprintf("cp-%d", b.mounts))
	t, err := timed(func() error {
		out, err := exec.CommandContext(ctx, "cp", "-a", dir, dst).CombinedOutput()
		if err != nil {
			return fmt.Errorf("cp -a %s: %w: %s", dir, err, out)
		}
		return nil
	})
	return t, func() error { err := os.RemoveAll(dst); syscall.Sync(); return err }, err
}

// pxarResult makes a result of the pxar workloads; rawName says what its
// raw-store column holds.
func (b *bench) pxarResult(key, label, rawName string, baseline system) *result {
	r := b.newResult(key, label, 0, baseline)
	r.rawName = rawName
	if baseline == sysRaw {
		r.baseName = rawName
	}
	if t, ok := pxarTargets[key]; ok {
		r.tgt = &t
	}
	return r
}

// benchPxar runs the pxar workloads; PBSFS_BENCH_PXAR_STEPS (e.g.
// "walks,requests") runs only those of walks, cat, big, cp, rss, requests,
// for a focused rerun over a kept store (--stores).
func (b *bench) benchPxar(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{{"walks", b.pxarWalks}, {"cat", b.pxarCat}, {"big", b.pxarBigRead}, {"cp", b.pxarCopy}, {"rss", b.pxarRSS}, {"requests", b.pxarRequests}}
	only := strings.Split(os.Getenv("PBSFS_BENCH_PXAR_STEPS"), ",")
	for _, step := range steps {
		if only[0] != "" && !slices.Contains(only, step.name) {
			continue
		}
		if err := step.run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pxarWalks: the walk, cold then warm on each fresh mount: bindfs over the
// extracted tree (the baseline of both archives), pbsfs in the v1 and the
// split archive's directory; in-process, decoding every chunk of the v1
// archive (cold) and walking each archive with package pxar (cold, warm).
func (b *bench) pxarWalks(ctx context.Context) error {
	d := b.px
	what := thousands(d.entries) + " entries"
	warm := map[pxarArchive]*result{
		pxarV1:    b.pxarResult("pxar-walk-warm", "pxar walk, warm, v1 ("+what+")", "in-process pxar", sysBindfs),
		pxarSplit: b.pxarResult("pxar-walk-warm", "pxar walk, warm, split ("+what+")", "in-process pxar", sysBindfs),
	}
	cold := map[pxarArchive]*result{
		pxarV1:    b.pxarResult("pxar-walk-cold-v1", "pxar walk, cold, v1 ("+what+")", "decode every chunk", sysRaw),
		pxarSplit: b.pxarResult("pxar-walk-cold-split", "pxar walk, cold, split ("+what+")", "in-process pxar", sysBindfs),
	}
	var ipColdV1 []float64
	coldRead := map[pxarArchive][]float64{} // bytes pbsfs read during a cold walk
	counts := map[string]int{}
	check := func(who string, n int) error {
		counts[who] = n
		if n != d.entries {
			return fmt.Errorf("%s: walk saw %d entries, the tree has %d", who, n, d.entries)
		}
		return nil
	}
	coldWarm := func(ctx context.Context, m *mount, dir, who string, c, w []*result, sys system, read *[]float64) error {
		if err := b.coldStart(); err != nil {
			return err
		}
		before, err := readChars(m.pid())
		if err != nil {
			return err
		}
		var n int
		t, err := timed(func() (err error) { n, err = walk(ctx, dir); return err })
		if err != nil {
			return err
		}
		after, err := readChars(m.pid())
		if err != nil {
			return err
		}
		if read != nil && b.cold {
			*read = append(*read, float64(after-before))
		}
		if err := check(who, n); err != nil {
			return err
		}
		for _, r := range c {
			if b.cold {
				r.add(sys, t)
			}
		}
		if t, err = timed(func() (err error) { n, err = walk(ctx, dir); return err }); err != nil {
			return err
		}
		for _, r := range w {
			r.add(sys, t)
		}
		return check(who, n)
	}
	jobs := []job{{"bindfs", func(ctx context.Context, r int) error {
		return b.withMount(ctx, sysBindfs, d.extracted, "", func(m *mount) error {
			return coldWarm(ctx, m, m.dir, "bindfs", []*result{cold[pxarV1], cold[pxarSplit]}, []*result{warm[pxarV1], warm[pxarSplit]}, sysBindfs, nil)
		})
	}}}
	for _, a := range []pxarArchive{pxarV1, pxarSplit} {
		jobs = append(jobs, job{"pbsfs " + a.what, func(ctx context.Context, r int) error {
			return b.withMount(ctx, sysPbsfs, d.store, "pxar: walks", func(m *mount) error {
				read := coldRead[a]
				err := coldWarm(ctx, m, filepath.Join(m.dir, a.rel()), "pbsfs "+a.what, []*result{cold[a]}, []*result{warm[a]}, sysPbsfs, &read)
				coldRead[a] = read
				return err
			})
		}})
		jobs = append(jobs, job{"in-process " + a.what, func(ctx context.Context, r int) error {
			if !a.split {
				if err := b.coldStart(); err != nil {
					return err
				}
				t, err := timed(func() error {
					_, err := decodeChunks(d.store, a.snapshot().Rel()+"/root.pxar.didx")
					return err
				})
				if err != nil {
					return err
				}
				if b.cold {
					cold[a].add(sysRaw, t)
				}
			}
			if err := b.coldStart(); err != nil {
				return err
			}
			arch, done, err := b.inProcess(a)
			if err != nil {
				return err
			}
			defer done()
			var n int
			t, err := timed(func() (err error) { n, err = pxarWalk(ctx, arch); return err })
			if err != nil {
				return err
			}
			if err := check("in-process "+a.what, n); err != nil {
				return err
			}
			if b.cold {
				if a.split {
					cold[a].add(sysRaw, t)
				} else {
					ipColdV1 = append(ipColdV1, t)
				}
			}
			if t, err = timed(func() (err error) { n, err = pxarWalk(ctx, arch); return err }); err != nil {
				return err
			}
			warm[a].add(sysRaw, t)
			return nil
		}})
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("pxar walks: %w", err)
	}
	if b.cold {
		cold[pxarV1].note = fmt.Sprintf("walking the v1 archive in-process with package pxar, cold: %s", secsRange(ipColdV1))
		stored, chunks, err := storedChunkBytes(d.store, pxarV1.snapshot().Rel()+"/root.pxar.didx")
		if err != nil {
			return err
		}
		cold[pxarV1].note += "; " + walkFloorNote(cold[pxarV1], cold[pxarSplit], coldRead[pxarV1], stored, chunks)
		b.finish(cold[pxarV1])
		b.finish(cold[pxarSplit])
	}
	b.finish(warm[pxarV1])
	b.finish(warm[pxarSplit])
	return nil
}

// pxarCat: every regular file read to its end, cold (fresh mount,
// dropped caches), through pbsfs and in-process for each archive, and
// through bindfs.
func (b *bench) pxarCat(ctx context.Context) error {
	if !b.cold {
		fmt.Println("pxar cat: skipped (cold only, needs root)")
		return nil
	}
	d := b.px
	what := fmt.Sprintf("%s files, %s", thousands(d.files), humanBytes(d.bytes))
	res := map[pxarArchive]*result{
		pxarV1:    b.pxarResult("pxar-cat-cold", "pxar cat every file, cold, v1 ("+what+")", "in-process decode", sysRaw),
		pxarSplit: b.pxarResult("pxar-cat-cold", "pxar cat every file, cold, split ("+what+")", "in-process decode", sysRaw),
	}
	check := func(who string, files int, bytes int64) error {
		if files != d.files || bytes != d.bytes {
			return fmt.Errorf("%s: read %d files, %d bytes; the tree has %d files, %d bytes", who, files, bytes, d.files, d.bytes)
		}
		return nil
	}
	jobs := []job{{"bindfs", func(ctx context.Context, r int) error {
		return b.withMount(ctx, sysBindfs, d.extracted, "", func(m *mount) error {
			if err := b.coldStart(); err != nil {
				return err
			}
			var files int
			var bytes int64
			t, err := timed(func() (err error) { files, bytes, err = catAll(ctx, m.dir); return err })
			if err != nil {
				return err
			}
			res[pxarV1].add(sysBindfs, t)
			res[pxarSplit].add(sysBindfs, t)
			return check("bindfs", files, bytes)
		})
	}}}
	for _, a := range []pxarArchive{pxarV1, pxarSplit} {
		jobs = append(jobs, job{"pbsfs " + a.what, func(ctx context.Context, r int) error {
			return b.withMount(ctx, sysPbsfs, d.store, "pxar: cat every file", func(m *mount) error {
				if err := b.coldStart(); err != nil {
					return err
				}
				var files int
				var bytes int64
				t, err := timed(func() (err error) { files, bytes, err = catAll(ctx, filepath.Join(m.dir, a.rel())); return err })
				if err != nil {
					return err
				}
				res[a].add(sysPbsfs, t)
				return check("pbsfs "+a.what, files, bytes)
			})
		}})
		jobs = append(jobs, job{"in-process " + a.what, func(ctx context.Context, r int) error {
			if err := b.coldStart(); err != nil {
				return err
			}
			arch, done, err := b.inProcess(a)
			if err != nil {
				return err
			}
			defer done()
			var files int
			var bytes int64
			t, err := timed(func() (err error) { files, bytes, err = pxarCatAll(ctx, arch); return err })
			if err != nil {
				return err
			}
			res[a].add(sysRaw, t)
			return check("in-process "+a.what, files, bytes)
		}})
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("pxar cat: %w", err)
	}
	for _, a := range []pxarArchive{pxarV1, pxarSplit} {
		res[a].note = "MB/s: " + mbpsOf(res[a], d.bytes)
		b.finish(res[a])
	}
	return nil
}

// mbpsOf formats the MB/s of each system's median for a workload of n bytes.
func mbpsOf(r *result, n int64) string {
	var parts []string
	for sys := system(0); sys < numSystems; sys++ {
		if v, ok := r.med(sys); ok && v > 0 {
			name := sys.String()
			if sys == sysRaw && r.rawName != "" {
				name = r.rawName
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", name, float64(n)/v/1e6))
		}
	}
	return joinComma(parts)
}

// pxarBigRead: the one large file read sequentially in 1 MiB reads through
// a fresh pbsfs mount against reading it in-process with package pxar
// (fresh datastore handle); the chunk files are in the page cache for both.
func (b *bench) pxarBigRead(ctx context.Context) error {
	d := b.px
	rel := pxarBig.snapshot().Rel()
	for _, f := range []string{rel + "/root.mpxar.didx", rel + "/root.ppxar.didx"} {
		if _, err := decodeChunks(d.store, f); err != nil { // warm the chunk files
			return err
		}
	}
	res := b.pxarResult("pxar-big-seq", fmt.Sprintf("pxar: one %s file read sequentially (split)", humanBytes(d.bigSize)), "in-process decode", sysRaw)
	buf := make([]byte, 1<<20)
	jobs := []job{
		{"in-process", func(ctx context.Context, r int) error {
			arch, done, err := b.inProcess(pxarBig)
			if err != nil {
				return err
			}
			defer done()
			root, _ := arch.Root()
			e, err := arch.Lookup(root, "big.img")
			if err != nil {
				return err
			}
			var off int64
			t, err := timed(func() error {
				for {
					n, err := arch.ReadAt(e, buf, off)
					off += int64(n)
					if errors.Is(err, io.EOF) || (err == nil && n == 0) {
						return nil
					}
					if err != nil {
						return err
					}
				}
			})
			if err != nil {
				return err
			}
			if off != d.bigSize {
				return fmt.Errorf("in-process: read %d bytes of %d", off, d.bigSize)
			}
			res.add(sysRaw, t)
			return nil
		}},
		{"pbsfs", func(ctx context.Context, r int) error {
			return b.withMount(ctx, sysPbsfs, d.store, "pxar: one large file read sequentially", func(m *mount) error {
				f, err := os.Open(filepath.Join(m.dir, pxarBig.rel(), "big.img"))
				if err != nil {
					return err
				}
				defer f.Close()
				var n int64
				t, err := timed(func() (err error) { n, err = readSeq(ctx, f, buf); return err })
				if err != nil {
					return err
				}
				if n != d.bigSize {
					return fmt.Errorf("pbsfs: read %d bytes of %d", n, d.bigSize)
				}
				res.add(sysPbsfs, t)
				return nil
			})
		}},
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("pxar large file: %w", err)
	}
	res.note = "MB/s: " + mbpsOf(res, d.bigSize)
	b.finish(res)
	return nil
}

// pxarCopy: `cp -a` of the whole tree, cold, out of pbsfs (each archive),
// out of bindfs and from the extracted tree on local disk.
func (b *bench) pxarCopy(ctx context.Context) error {
	d := b.px
	res := map[pxarArchive]*result{
		pxarV1:    b.pxarResult("pxar-cp", "pxar cp -a of the whole tree, cold, v1", "local disk", sysBindfs),
		pxarSplit: b.pxarResult("pxar-cp", "pxar cp -a of the whole tree, cold, split", "local disk", sysBindfs),
	}
	copyJob := func(name string, sys system, store, sub string, rs ...*result) job {
		return job{name, func(ctx context.Context, r int) error {
			return b.withMount(ctx, sys, store, "pxar: cp -a", func(m *mount) error {
				if err := b.coldStart(); err != nil {
					return err
				}
				t, clean, err := b.cpA(ctx, filepath.Join(m.dir, sub))
				if cerr := clean(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				for _, res := range rs {
					res.add(sys, t)
				}
				return nil
			})
		}}
	}
	jobs := []job{
		copyJob("local disk", sysRaw, d.extracted, "", res[pxarV1], res[pxarSplit]),
		copyJob("bindfs", sysBindfs, d.extracted, "", res[pxarV1], res[pxarSplit]),
		copyJob("pbsfs v1", sysPbsfs, d.store, pxarV1.rel(), res[pxarV1]),
		copyJob("pbsfs split", sysPbsfs, d.store, pxarSplit.rel(), res[pxarSplit]),
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("pxar cp -a: %w", err)
	}
	for _, a := range []pxarArchive{pxarV1, pxarSplit} {
		res[a].note = "MB/s: " + mbpsOf(res[a], d.bytes)
		b.finish(res[a])
		fmt.Println("  " + res[a].note)
	}
	return nil
}

// pxarRSSLabel is the peak-RSS label of the walk of the many-entry tree.
func (b *bench) pxarRSSLabel() string {
	return fmt.Sprintf("pxar: walk of %s entries (v1), cold then warm", thousands(b.px.many))
}

// pxarRSS: pbsfs's peak RSS over a cold and a warm walk of the many-entry
// archive (one round).
func (b *bench) pxarRSS(ctx context.Context) error {
	d := b.px
	if d.many == 0 {
		return nil
	}
	label := b.pxarRSSLabel()
	res := b.pxarResult("pxar-many-walk", fmt.Sprintf("pxar walk, cold, v1 (%s entries)", thousands(d.many)), "", sysBindfs)
	err := b.withMount(ctx, sysPbsfs, d.store, label, func(m *mount) error {
		if err := b.coldStart(); err != nil {
			return err
		}
		dir := filepath.Join(m.dir, pxarMany.rel())
		var n int
		t, err := timed(func() (err error) { n, err = walk(ctx, dir); return err })
		if err != nil {
			return err
		}
		if n != d.many {
			return fmt.Errorf("walk of %s: %d entries, want %d", dir, n, d.many)
		}
		res.add(sysPbsfs, t)
		// The peak counts only if pbsfs held as many nodes as its entry
		// cap lets the kernel keep (eviction goes down to nine tenths of
		// it): the kernel also forgets inodes under memory pressure, and
		// a drop_caches elsewhere on the machine (another benchmark's
		// cold start) forgets them all.
		want := min(d.many, pbsfs.DefaultPxarCap*9/10)
		if held, err := fuseInodes(); err == nil && held < want {
			res.note = fmt.Sprintf("the kernel held %s FUSE inodes after the cold walk, fewer than the %s the entry cap lets it keep: it forgot some, so the peak is low", thousands(held), thousands(want))
			fmt.Println("  warning: " + res.note)
		}
		_, err = walk(ctx, dir)
		return err
	})
	if err != nil {
		return fmt.Errorf("pxar RSS walk: %w", err)
	}
	b.finish(res)
	return nil
}

// fuseInodes is the number of FUSE inodes the kernel holds, of all
// mounts (/proc/slabinfo).
func fuseInodes() (int, error) {
	data, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return 0, err
	}
	return parseFuseInodes(data)
}

// parseFuseInodes finds the active objects of the fuse_inode cache in a
// /proc/slabinfo text.
func parseFuseInodes(slabinfo []byte) (int, error) {
	for _, line := range strings.Split(string(slabinfo), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "fuse_inode" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return 0, fmt.Errorf("slabinfo: %q: %w", line, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("slabinfo: no fuse_inode line")
}

// pxarReport writes the pxar section of BENCHMARKS.md: the requests per
// entry and how the figures were taken.
func (b *bench) pxarReport(w func(string, ...any)) {
	d := b.px
	w("## pxar archives (issue #12)\n\n")
	w("Tree: %s files, %s directories and %s symlinks (%s entries, %s of file contents), generated deterministically (seed %d) and stored ",
		thousands(d.files), thousands(d.tree.spec.dirs), thousands(d.entries-d.files-d.tree.spec.dirs), thousands(d.entries), humanBytes(d.bytes), d.tree.spec.seed)
	w("as a v1 archive (`root.pxar.didx` + catalog) and as a split archive (`root.mpxar.didx` + `root.ppxar.didx`) by `demo.WriteFileArchive` ")
	if b.cfg.pxarChunk > 0 {
		w("(content-defined chunks with PBS's proportions, %s on average as the client's `--chunk-size`; zstd), and extracted on local disk for bindfs. ", humanBytes(int64(b.cfg.pxarChunk)))
	} else {
		w("(the demo's content-defined chunks of ~80 KiB; zstd), and extracted on local disk for bindfs. ")
	}
	w("File sizes are log-normal (σ %.1f: the median file is a fifth of the mean, the top 1 %% hold about half the bytes, capped at %s); ", sizeSigma, humanBytes(d.tree.maxSize))
	w("a quarter of the files are random bytes, the rest text; files per directory are log-normal too, and directories hang below earlier ones, biased towards the first. ")
	if d.reused {
		w("The store was reused (`--stores`).\n\n")
	} else {
		w("Generating it all took %.0f s.\n\n", d.genSecs)
	}
	if len(b.pxarReqs) > 0 {
		w("### FUSE requests per entry\n\n")
		w("Counted in separate, untimed runs from the servers' own request logs (`pbsfs mount --debug`, `bindfs -d`); per entry of the tree (%s); ", thousands(d.entries))
		w("FORGETs (no reply) left out, RELEASEDIR counted as RELEASE (bazil's log does not tell them apart).\n\n")
		w("| workload | bindfs (extracted tree) | pbsfs, v1 archive | pbsfs, split archive |\n|---|---|---|---|\n")
		for _, row := range b.pxarReqs {
			w("| %s |\n", strings.Join(row, " | "))
		}
		w("\n")
	}
	w("### How the pxar figures are taken\n\n")
	w("- **pbsfs** mounts the whole store (archives shown); the workloads run in `ct/300/…/root.pxar/` (v1) or `ct/301/…/root.pxar/` (split). ")
	w("**bindfs** is mounted over the extracted tree. **In-process** opens a fresh `datastore.Store` (empty chunk cache, default size as pbsfs's) and `OpenPxar`, then uses package pxar: `ReadDir` of every directory for the walk, `ReadAt` in 128 KiB steps for cat.\n")
	w("- **Walk** as above (getdents + lstat of every entry); every system must see the same number of entries. Cold = fresh mount or handle, then `sync; echo 3 > /proc/sys/vm/drop_caches`; warm = again on the same mount. ")
	w("The cold v1 baseline is reading, decoding and verifying every chunk of `root.pxar.didx` in-process (a v1 walk must touch most of them).\n")
	w("- **cat every file**: the walk plus open, read to EOF in 128 KiB reads, close of every regular file; byte counts checked against the tree.\n")
	w("- **One large file**: %s in one split archive (`ct/302`), read in 1 MiB preads from a fresh mount against `ReadAt` in 1 MiB steps in-process; its chunk files are in the page cache for both.\n", humanBytes(d.bigSize))
	w("- **cp -a**: `cp -a` of the archive's root directory to local disk, cold, removed (untimed) after each copy; MB/s are file bytes over wall time.\n")
	if d.many > 0 {
		w("- **Peak RSS**: VmHWM of pbsfs after a cold and a warm walk of a %s-entry v1 archive (`ct/303`, small files), one round, with the default entry cap (%s entries held at most); noted when the kernel held fewer FUSE inodes than nine tenths of that after the cold walk (`/proc/slabinfo`: it forgot some, and pbsfs their nodes, so the peak is low).\n", thousands(d.many), thousands(pbsfs.DefaultPxarCap))
	}
	w("\n")
}
