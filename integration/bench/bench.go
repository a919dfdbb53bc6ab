package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"pbsfs/demo"
	"pbsfs/s3store/s3test"
)

// bench is one run: its temporary directory, the stores, the results.
type bench struct {
	cfg      config
	root     string // module root
	cl       *cleaner
	tmp      string // everything temporary lives below
	mntDir   string
	lockDir  string
	pbsfsBin string
	cold     bool // drop_caches possible
	mounts   int  // mount points made (for unique names)
	profiles int

	stores   map[string]string // name -> path
	arch     *archiveData      // the archive store (archives.go)
	px       *pxarData         // the pxar store and extracted tree (pxar.go)
	pxarReqs [][]string        // requests per entry: workload, bindfs, pbsfs v1, pbsfs split
	s3       *s3Data           // the bucket and its server (s3.go)

	pbsfsDebug *opCounter // set while mounting a pbsfs whose requests are counted
	genTimes   []genTime
	results    []*result
	rss        []rssFigure
	facts      machineFacts
	started    time.Time
}

type genTime struct {
	name      string
	snapshots int
	seconds   float64
	reused    bool
}

type rssFigure struct {
	label string
	bytes int64
}

func newBench(ctx context.Context, cfg config, root string, cl *cleaner) (*bench, error) {
	b := &bench{cfg: cfg, root: root, cl: cl, stores: map[string]string{}, started: time.Now()}
	tmp, err := os.MkdirTemp("", "pbsfs-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	b.tmp = tmp
	b.mntDir = filepath.Join(tmp, "mnt")
	b.lockDir = filepath.Join(tmp, "locks")
	cl.add("remove "+tmp, func() error { return removeTemp(tmp, b.mntDir) })
	for _, d := range []string{b.mntDir, b.lockDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return nil, err
		}
	}
	for _, tool := range []string{"bindfs", "fusermount3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is needed: %w", tool, err)
		}
	}
	b.cold = canDropCaches()
	if !b.cold {
		fmt.Println("note: not root, so no cold runs (they write /proc/sys/vm/drop_caches)")
	}
	b.facts = collectFacts()
	if err := b.buildPbsfs(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// removeTemp removes the run's temporary directory, but never while
// something is still mounted below it (that would delete through the mount).
func removeTemp(tmp, mntDir string) error {
	names, _ := readDir(mntDir)
	for _, n := range names {
		p := filepath.Join(mntDir, n)
		if m, _ := isFuseMount(p); m {
			return fmt.Errorf("%s is still mounted; leaving %s in place (unmount with fusermount3 -u, then remove it)", p, tmp)
		}
		_ = os.Remove(p) // empty mount points only
	}
	return os.RemoveAll(tmp)
}

func (b *bench) buildPbsfs(ctx context.Context) error {
	if b.cfg.pbsfsBin != "" {
		b.pbsfsBin = b.cfg.pbsfsBin
		b.facts.pbsfs = "given with --pbsfs: " + firstLine(exec.Command(b.pbsfsBin, "version"))
		return nil
	}
	b.facts.pbsfs = "./cmd/pbsfs of the working tree at " + firstLine(exec.Command("git", "-C", b.root, "describe", "--always", "--dirty"))
	b.pbsfsBin = filepath.Join(b.tmp, "pbsfs")
	fmt.Printf("building ./cmd/pbsfs into %s\n", b.pbsfsBin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.pbsfsBin, "./cmd/pbsfs")
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/pbsfs: %w\n%s", err, out)
	}
	return nil
}

// storeSpec is a store to generate.
type storeSpec struct {
	name string
	opts demo.LargeOptions
}

func walkSpec(size int) storeSpec {
	groups := max(size/100, 1)
	spg := max(size/groups, 1)
	ns := 0
	if groups >= 8 {
		ns = 3
	}
	return storeSpec{
		name: fmt.Sprintf("walk-%d", size),
		opts: demo.LargeOptions{Namespaces: ns, Groups: groups, SnapshotsPerGroup: spg, Seed: 1},
	}
}

func (b *bench) deepSpec() storeSpec {
	return storeSpec{
		name: fmt.Sprintf("group-%d", b.cfg.deep),
		opts: demo.LargeOptions{Groups: 1, SnapshotsPerGroup: b.cfg.deep, Seed: 2},
	}
}

// generate makes (or, with --stores, reuses) a store.
func (b *bench) generate(ctx context.Context, s storeSpec) (string, error) {
	if p, ok := b.stores[s.name]; ok {
		return p, nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	dir := filepath.Join(b.tmp, "stores", s.name)
	marker := ""
	if b.cfg.keepStores != "" {
		dir = filepath.Join(b.cfg.keepStores, s.name)
		marker = dir + ".complete"
		if _, err := os.Stat(marker); err == nil {
			b.stores[s.name] = dir
			b.genTimes = append(b.genTimes, genTime{s.name, s.opts.Groups * s.opts.SnapshotsPerGroup, 0, true})
			fmt.Printf("store %s: reusing %s\n", s.name, dir)
			return dir, nil
		}
		_ = os.RemoveAll(dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	t := time.Now()
	sum, err := demo.Large(dir, s.opts)
	if err != nil {
		return "", fmt.Errorf("generate %s: %w", s.name, err)
	}
	secs := time.Since(t).Seconds()
	if marker != "" {
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return "", err
		}
	}
	b.stores[s.name] = dir
	b.genTimes = append(b.genTimes, genTime{s.name, sum.Snapshots, secs, false})
	fmt.Printf("store %s: %d snapshots in %d groups, %d namespaces, generated in %.1f s (demo.Large, %d cores)\n",
		s.name, sum.Snapshots, sum.Groups, sum.Namespaces, secs, b.facts.cores)
	return dir, nil
}

func (b *bench) runAll(ctx context.Context) error {
	b.facts.loadStart = loadAvg()
	// Generate everything first, so that no measurement overlaps the
	// write-back of a generator.
	var specs []storeSpec
	if b.runs("s3") && b.cfg.only == nil && os.Getenv(s3test.EnvBinary) == "" {
		fmt.Printf("note: $%s is not set, so no S3 workloads (scripts/build-weed prints the binary's path)\n", s3test.EnvBinary)
		b.cfg.only = map[string]bool{}
		for _, w := range workloads {
			b.cfg.only[w] = w != "s3"
		}
	}
	if b.runs("walk") {
		for _, s := range b.cfg.sizes {
			specs = append(specs, walkSpec(s))
		}
	}
	if b.runs("read") || b.runs("write") {
		specs = append(specs, walkSpec(b.cfg.workSize))
	}
	if b.runs("list") {
		specs = append(specs, b.deepSpec())
	}
	for _, s := range specs {
		if _, err := b.generate(ctx, s); err != nil {
			return err
		}
	}
	if b.runs("archives") {
		if err := b.generateArchives(ctx); err != nil {
			return err
		}
	}
	if b.runs("pxar") {
		if err := b.generatePxar(ctx); err != nil {
			return err
		}
	}
	if b.runs("s3") {
		if err := b.generateS3(ctx); err != nil {
			return err
		}
	}
	var steps []func(context.Context) error
	if b.runs("list") {
		steps = append(steps, b.benchGroupListing)
	}
	if b.runs("read") {
		steps = append(steps, b.benchReads)
	}
	if b.runs("write") {
		steps = append(steps, b.benchWrites)
	}
	if b.runs("walk") {
		for _, size := range b.cfg.sizes {
			steps = append(steps, func(ctx context.Context) error { return b.benchWalk(ctx, size) })
		}
	}
	if b.runs("archives") {
		steps = append(steps, b.benchArchives)
	}
	if b.runs("pxar") {
		steps = append(steps, b.benchPxar)
	}
	if b.runs("s3") {
		steps = append(steps, b.benchS3)
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	b.facts.loadEnd = loadAvg()
	b.facts.duration = time.Since(b.started)
	fmt.Println()
	fmt.Print(b.textTable())
	return b.writeReport()
}

// runs reports whether workload w is selected (--only).
func (b *bench) runs(w string) bool { return b.cfg.only == nil || b.cfg.only[w] }

// job is one system's part of a round.
type job struct {
	name string
	run  func(ctx context.Context, round int) error
}

// rounds runs the jobs n times, rotating their order every round.
func rounds(ctx context.Context, n int, jobs []job) error {
	idx := make([]system, len(jobs))
	for i := range idx {
		idx[i] = system(i)
	}
	for r := 0; r < n; r++ {
		for _, i := range order(r, idx) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := jobs[i].run(ctx, r); err != nil {
				return fmt.Errorf("%s, round %d: %w", jobs[i].name, r+1, err)
			}
		}
	}
	return nil
}

// withMount mounts store through sys, runs fn on it and unmounts; for pbsfs
// it records the process's peak RSS under label.
func (b *bench) withMount(ctx context.Context, sys system, store, label string, fn func(m *mount) error) error {
	m, err := b.mountSystem(ctx, sys, store)
	if err != nil {
		return err
	}
	ferr := fn(m)
	if sys == sysPbsfs {
		if hwm, err := m.peakRSS(); err == nil {
			b.noteRSS(label, hwm)
		} else if ferr == nil {
			ferr = err
		}
	}
	cerr := m.close()
	return errors.Join(ferr, cerr)
}

// noteRSS keeps the largest peak RSS seen per label.
func (b *bench) noteRSS(label string, v int64) {
	for i := range b.rss {
		if b.rss[i].label == label {
			b.rss[i].bytes = max(b.rss[i].bytes, v)
			return
		}
	}
	b.rss = append(b.rss, rssFigure{label, v})
}

// coldStart prepares a cold measurement: drop the kernel's caches (the
// caller mounted a fresh pbsfs/bindfs, whose own caches are empty).
func (b *bench) coldStart() error {
	if !b.cold {
		return nil
	}
	return dropCaches()
}

// benchWalk: the whole-tree walk, cold then warm on each fresh mount.
func (b *bench) benchWalk(ctx context.Context, size int) error {
	store := b.stores[walkSpec(size).name]
	n := b.cfg.rounds
	if size >= largeSize {
		n = min(n, b.cfg.largeRounds)
	}
	cold := b.newResult("walk-cold", fmt.Sprintf("walk, cold (%s)", snapshots(size)), size, sysBindfs)
	warm := b.newResult("walk-warm", fmt.Sprintf("walk, warm (%s)", snapshots(size)), size, sysBindfs)
	counts := [numSystems]int{}
	var jobs []job
	for _, sys := range []system{sysRaw, sysBindfs, sysPbsfs} {
		jobs = append(jobs, job{sys.String(), func(ctx context.Context, r int) error {
			return b.withMount(ctx, sys, store, "walk, "+snapshots(size), func(m *mount) (err error) {
				counts[sys], err = b.walkColdWarm(ctx, m, sys, cold, warm)
				return err
			})
		}})
	}
	if err := rounds(ctx, n, jobs); err != nil {
		return fmt.Errorf("walk %s: %w", snapshots(size), err)
	}
	note := fmt.Sprintf("entries stat'ed per walk: raw %d, bindfs %d, pbsfs %d", counts[sysRaw], counts[sysBindfs], counts[sysPbsfs])
	warm.note = note
	if counts[sysRaw] != counts[sysBindfs] {
		return fmt.Errorf("walk %s: bindfs shows %d entries, the raw store %d", snapshots(size), counts[sysBindfs], counts[sysRaw])
	}
	if b.cold {
		b.finish(cold)
	}
	b.finish(warm)
	return nil
}

// benchGroupListing: `ls -l` of one group directory of cfg.deep snapshots.
func (b *bench) benchGroupListing(ctx context.Context) error {
	store := b.stores[b.deepSpec().name]
	l, err := scanLayout(store)
	if err != nil {
		return err
	}
	if len(l.groups) != 1 {
		return fmt.Errorf("group store %s has %d groups, want 1", store, len(l.groups))
	}
	label := fmt.Sprintf("list one group of %s", snapshots(b.cfg.deep))
	cold := b.newResult("list-cold", label+", cold", b.cfg.deep, sysBindfs)
	warm := b.newResult("list-warm", label+", warm", b.cfg.deep, sysBindfs)
	var jobs []job
	for _, sys := range []system{sysRaw, sysBindfs, sysPbsfs} {
		jobs = append(jobs, job{sys.String(), func(ctx context.Context, r int) error {
			return b.withMount(ctx, sys, store, label, func(m *mount) error {
				dir := filepath.Join(m.dir, l.groups[0])
				if err := b.coldStart(); err != nil {
					return err
				}
				t, err := timed(func() error { _, err := listDir(dir); return err })
				if err != nil {
					return err
				}
				if b.cold {
					cold.add(sys, t)
				}
				// Warm: the median of three listings goes in as this
				// round's figure.
				var ts []float64
				for range 3 {
					t, err := timed(func() error { _, err := listDir(dir); return err })
					if err != nil {
						return err
					}
					ts = append(ts, t)
				}
				warm.add(sys, median(ts))
				return nil
			})
		}})
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("group listing: %w", err)
	}
	if b.cold {
		b.finish(cold)
	}
	b.finish(warm)
	return nil
}

// benchReads: every snapshot's notes and manifest.json through pbsfs
// against every index.json.blob through bindfs and on the raw store; each
// job on a fresh mount, cold (after drop_caches) then warm.
func (b *bench) benchReads(ctx context.Context) error {
	store := b.stores[walkSpec(b.cfg.workSize).name]
	l, err := scanLayout(store)
	if err != nil {
		return err
	}
	n := len(l.snapshots)
	what := snapshots(n)
	notesCold := b.newResult("notes-cold", "read every notes (vs index.json.blob), cold, "+what, n, sysBindfs)
	notesWarm := b.newResult("notes-warm", "read every notes (vs index.json.blob), warm, "+what, n, sysBindfs)
	manCold := b.newResult("manifest-cold", "read every manifest.json (vs index.json.blob), cold, "+what, n, sysBindfs)
	manWarm := b.newResult("manifest-warm", "read every manifest.json (vs index.json.blob), warm, "+what, n, sysBindfs)
	paths := func(base, name string) []string {
		out := make([]string, n)
		for i, s := range l.snapshots {
			out[i] = base + "/" + s + "/" + name
		}
		return out
	}
	readJob := func(sys system, name string, cold, warm []*result) job {
		return job{sys.String() + " " + name, func(ctx context.Context, r int) error {
			return b.withMount(ctx, sys, store, "reads, "+what, func(m *mount) error {
				ps := paths(m.dir, name)
				if err := b.coldStart(); err != nil {
					return err
				}
				t, err := timed(func() error { _, err := readFiles(ctx, ps); return err })
				if err != nil {
					return err
				}
				if b.cold {
					for _, res := range cold {
						res.add(sys, t)
					}
				}
				t, err = timed(func() error { _, err := readFiles(ctx, ps); return err })
				if err != nil {
					return err
				}
				for _, res := range warm {
					res.add(sys, t)
				}
				return nil
			})
		}}
	}
	jobs := []job{
		readJob(sysRaw, "index.json.blob", []*result{notesCold, manCold}, []*result{notesWarm, manWarm}),
		readJob(sysBindfs, "index.json.blob", []*result{notesCold, manCold}, []*result{notesWarm, manWarm}),
		readJob(sysPbsfs, "notes", []*result{notesCold}, []*result{notesWarm}),
		readJob(sysPbsfs, "manifest.json", []*result{manCold}, []*result{manWarm}),
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("reads: %w", err)
	}
	if b.cold {
		b.finish(notesCold)
	}
	b.finish(notesWarm)
	if b.cold {
		b.finish(manCold)
	}
	b.finish(manWarm)
	return nil
}

// benchWrites: cfg.writes notes writes through the mount, one after the
// other and then by cfg.writers concurrent writers on distinct snapshots,
// against bare atomic writes of blobs of the same size on the raw store.
func (b *bench) benchWrites(ctx context.Context) error {
	store := b.stores[walkSpec(b.cfg.workSize).name]
	l, err := scanLayout(store)
	if err != nil {
		return err
	}
	targets := spread(l.snapshots, b.cfg.writes)
	n := len(targets)
	seq := b.newResult("write-seq", fmt.Sprintf("%s notes writes, sequential", thousands(n)), n, sysRaw)
	conc := b.newResult("write-conc", fmt.Sprintf("%s notes writes, %d concurrent writers", thousands(n), b.cfg.writers), n, sysRaw)
	seq.baseName, conc.baseName = "bare", "bare"
	bare := func(ctx context.Context, r int, res *result, who string, workers int) error {
		blobs := make([][]byte, n)
		for i, s := range targets {
			var err error
			if blobs[i], err = withNotes(filepath.Join(store, s, "index.json.blob"), noteText(who, r, i)); err != nil {
				return err
			}
		}
		t, err := timed(func() error {
			return parallel(n, workers, func(i int) error {
				return bareWrite(filepath.Join(store, targets[i]), "index.json.blob", blobs[i])
			})
		})
		if err != nil {
			return err
		}
		res.add(sysRaw, t)
		return nil
	}
	pbsfs := func(ctx context.Context, m *mount, r int, res *result, who string, workers int) error {
		t, err := timed(func() error {
			return parallel(n, workers, func(i int) error {
				return writeNotes(filepath.Join(m.dir, targets[i], "notes"), noteText(who, r, i))
			})
		})
		if err != nil {
			return err
		}
		// Untimed check that every write reached the store.
		for i, s := range targets {
			got, err := notesOf(filepath.Join(store, s, "index.json.blob"))
			if err != nil {
				return err
			}
			if want := noteText(who, r, i); got != want {
				return fmt.Errorf("%s: notes %q after writing %q through pbsfs", s, got, want)
			}
		}
		res.add(sysPbsfs, t)
		return nil
	}
	jobs := []job{
		{"bare", func(ctx context.Context, r int) error {
			if err := bare(ctx, r, seq, "bare", 1); err != nil {
				return err
			}
			return bare(ctx, r, conc, "bare*", b.cfg.writers)
		}},
		{"pbsfs", func(ctx context.Context, r int) error {
			return b.withMount(ctx, sysPbsfs, store, "writes, "+snapshots(len(l.snapshots)), func(m *mount) error {
				// Warm the lookups, as the bare writer's paths are warm.
				for _, s := range targets {
					if _, err := os.Stat(filepath.Join(m.dir, s, "notes")); err != nil {
						return err
					}
				}
				if err := pbsfs(ctx, m, r, seq, "pbsfs", 1); err != nil {
					return err
				}
				return pbsfs(ctx, m, r, conc, "pbsfs*", b.cfg.writers)
			})
		}},
	}
	if err := rounds(ctx, b.cfg.rounds, jobs); err != nil {
		return fmt.Errorf("writes: %w", err)
	}
	b.finish(seq)
	b.finish(conc)
	return nil
}

// snapshots formats "10,000 snapshots".
func snapshots(n int) string { return thousands(n) + " snapshots" }

// thousands formats n with comma separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var parts []string
	for len(s) > 3 {
		parts = append([]string{s[len(s)-3:]}, parts...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, parts...), ",")
}

// walkColdWarm walks m's tree twice, after dropping the caches (the cold
// walk, timed into cold when cold runs are on) and again at once (warm),
// and returns the entries the second walk saw.
func (b *bench) walkColdWarm(ctx context.Context, m *mount, sys system, cold, warm *result) (int, error) {
	if err := b.coldStart(); err != nil {
		return 0, err
	}
	var c int
	t, err := timed(func() (err error) { c, err = walk(ctx, m.dir); return err })
	if err != nil {
		return 0, err
	}
	if b.cold {
		cold.add(sys, t)
	}
	if t, err = timed(func() (err error) { c, err = walk(ctx, m.dir); return err }); err != nil {
		return 0, err
	}
	warm.add(sys, t)
	return c, nil
}
