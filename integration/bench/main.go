// Command bench measures pbsfs against two baselines on the same generated
// datastores in the same run: the raw datastore directory and bindfs (a C
// libfuse3 passthrough) mounted over it. It builds cmd/pbsfs into a temporary
// directory, generates stores with demo.Large, runs every workload with the
// systems alternating within each round, and reports medians and ratios.
//
// Usage (from the module root):
//
//	go run ./integration/bench [--sizes 1000,10000,100000] [--rounds 3] [--quick] [--out DIR]
//
// The results go to stdout, to DIR/BENCHMARKS.md (a markdown table with the
// machine's facts) and to DIR/docs/walk-scaling.svg (walk time against store
// size); DIR defaults to the module root, or to nothing for --quick.
//
// --only s3 (s3.go) runs issue #17's: a bucket on a real SeaweedFS server
// ($PBSFS_WEED) holding a store of --s3-snapshots snapshots and a disk
// image, walked and read through S3 mounts against pbsfs over the local
// store and against fetching and decoding in-process, with FUSE and S3
// requests per entry. Without $PBSFS_WEED a run of all workloads leaves
// it out.
//
// --only pxar (pxar.go) runs issue #12's workloads instead: a generated
// root-file-system-like tree (--pxar-files, --pxar-bytes; --pxar-big for the
// one large file, --pxar-many for the RSS walk, --pxar-chunk for the chunk
// size) stored as v1 and split archives, against bindfs over the tree
// extracted on disk and against decoding it in-process with package pxar,
// with the FUSE requests per entry of both servers (requests.go).
//
// Cold runs need root (they write /proc/sys/vm/drop_caches); without it they
// are skipped. The tool unmounts what it mounted and removes its temporary
// directory on return, on SIGINT/SIGTERM and when --timeout expires.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	sizes       []int // snapshots per walk store
	rounds      int   // rounds per workload
	largeRounds int   // rounds of the walk on stores of largeSize snapshots or more
	quick       bool
	out         string // where BENCHMARKS.md and docs/ go; "" = nowhere
	pbsfsBin    string // prebuilt pbsfs; "" = go build ./cmd/pbsfs
	deep        int    // snapshots in the one-group store
	workSize    int    // snapshots in the store reads and writes run on
	writes      int    // notes writes per round
	writers     int    // concurrent writers
	timeout     time.Duration
	profileDir  string          // pbsfs writes pprof profiles of each mount here
	keepStores  string          // generate stores here and keep them (reused when present)
	only        map[string]bool // workloads to run; nil = all

	pxarFiles int   // regular files of the pxar tree
	pxarBytes int64 // their total size; 0 = 1 GiB per 100,000 files
	pxarBig   int64 // the one large file
	pxarMany  int   // entries of the RSS walk's archive; 0 = none
	pxarChunk int   // average chunk size of the archives; 0 = the demo's ~80 KiB

	s3Snapshots   int // snapshots of the bucket's walk store (s3.go)
	s3ImageChunks int // 4 MiB chunks of the bucket's disk image; 0 = 16 (--quick 4)
}

// workloads are the names --only accepts.
var workloads = []string{"list", "read", "write", "walk", "archives", "pxar", "s3"}

// largeSize is where walks switch to cfg.largeRounds: one walk of 100,000
// snapshots through a FUSE mount takes most of a minute on two cores.
const largeSize = 50000

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(run(cfg))
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	sizes := fl.String("sizes", "", "comma-separated store sizes in snapshots for the walk (default 1000,10000,100000; --quick 200,1000)")
	fl.IntVar(&cfg.rounds, "rounds", 0, "rounds per workload, systems alternating within a round (default 3; --quick 1)")
	fl.IntVar(&cfg.largeRounds, "large-rounds", 1, fmt.Sprintf("rounds of the walk on stores of %d snapshots or more", largeSize))
	fl.BoolVar(&cfg.quick, "quick", false, "small sizes and few repetitions: a smoke run of a minute or two")
	fl.StringVar(&cfg.out, "out", "", "directory for BENCHMARKS.md and docs/walk-scaling.svg (default: the module root; --quick: none)")
	fl.StringVar(&cfg.pbsfsBin, "pbsfs", "", "use this pbsfs binary instead of building ./cmd/pbsfs")
	fl.IntVar(&cfg.deep, "group-size", 0, "snapshots in the single group that is listed (default 10000; --quick 1000)")
	fl.IntVar(&cfg.workSize, "work-size", 0, "snapshots in the store the read and write workloads use (default 10000; --quick 1000)")
	fl.IntVar(&cfg.writes, "writes", 0, "notes writes per round (default 1000; --quick 100)")
	fl.IntVar(&cfg.writers, "writers", 8, "concurrent writers")
	fl.DurationVar(&cfg.timeout, "timeout", 0, "give up, clean up and exit after this long (default 40m; --quick 10m)")
	fl.StringVar(&cfg.profileDir, "profile", "", "write CPU and heap profiles of each pbsfs mount to this directory (pbsfs --cpuprofile, --memprofile; profiling costs time, so the figures are then not the reference)")
	fl.StringVar(&cfg.keepStores, "stores", "", "generate the stores in this directory and keep them; reused by later runs when present")
	only := fl.String("only", "", "run only these workloads, comma-separated: "+strings.Join(workloads, ","))
	fl.IntVar(&cfg.pxarFiles, "pxar-files", 0, "pxar: regular files of the generated tree, in directories of 1/20 as many (default 100000; --quick 2000)")
	pxarBytes := fl.String("pxar-bytes", "", "pxar: total size of the tree's files, e.g. 1g or 100m (default 1 GiB per 100,000 files)")
	pxarBig := fl.String("pxar-big", "", "pxar: size of the one large file (default 1g; --quick 64m)")
	fl.IntVar(&cfg.pxarMany, "pxar-many", -1, "pxar: entries of the archive whose walk's peak RSS is taken; 0 = none (default 1000000; --quick 20000)")
	pxarChunk := fl.String("pxar-chunk", "4m", "pxar: average chunk size of the archives, a power of two from 64k to 4m as the client's --chunk-size (default 4m, the client's); 0 = the demo's ~80 KiB chunks")
	fl.IntVar(&cfg.s3Snapshots, "s3-snapshots", 0, "s3: snapshots of the datastore in the bucket (default 10000; --quick 1000)")
	fl.IntVar(&cfg.s3ImageChunks, "s3-image-chunks", 0, "s3: 4 MiB chunks of the disk image in the bucket (default 16; --quick 4)")
	if err := fl.Parse(args); err != nil {
		return cfg, err
	}
	if fl.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if cfg.quick {
				*v = quick
			}
		}
	}
	if *only != "" {
		cfg.only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			w = strings.TrimSpace(w)
			if !slices.Contains(workloads, w) {
				return cfg, fmt.Errorf("--only: unknown workload %q (have %s)", w, strings.Join(workloads, ","))
			}
			cfg.only[w] = true
		}
	}
	def(&cfg.rounds, 3, 1)
	def(&cfg.pxarFiles, 100000, 2000)
	if cfg.pxarMany < 0 {
		cfg.pxarMany = 1000000
		if cfg.quick {
			cfg.pxarMany = 20000
		}
	}
	if *pxarBig == "" {
		*pxarBig = "1g"
		if cfg.quick {
			*pxarBig = "64m"
		}
	}
	var perr error
	if cfg.pxarBig, perr = parseBytes(*pxarBig); perr != nil || cfg.pxarBig < 1 {
		return cfg, fmt.Errorf("--pxar-big %q: a positive size please", *pxarBig)
	}
	if *pxarBytes != "" {
		if cfg.pxarBytes, perr = parseBytes(*pxarBytes); perr != nil || cfg.pxarBytes < 1 {
			return cfg, fmt.Errorf("--pxar-bytes %q: a positive size please", *pxarBytes)
		}
	}
	chunk, perr := parseBytes(*pxarChunk)
	if perr != nil || (chunk != 0 && (chunk < 64<<10 || chunk > 4<<20 || chunk&(chunk-1) != 0)) {
		return cfg, fmt.Errorf("--pxar-chunk %q: a power of two from 64k to 4m, or 0", *pxarChunk)
	}
	cfg.pxarChunk = int(chunk)
	if cfg.pxarFiles < 20 {
		return cfg, errors.New("--pxar-files must be at least 20")
	}
	def(&cfg.deep, 10000, 1000)
	def(&cfg.s3Snapshots, 10000, 1000)
	def(&cfg.workSize, 10000, 1000)
	def(&cfg.writes, 1000, 100)
	if cfg.timeout == 0 {
		cfg.timeout = 40 * time.Minute
		if cfg.quick {
			cfg.timeout = 10 * time.Minute
		}
	}
	if *sizes == "" {
		*sizes = "1000,10000,100000"
		if cfg.quick {
			*sizes = "200,1000"
		}
	}
	var err error
	if cfg.sizes, err = parseSizes(*sizes); err != nil {
		return cfg, err
	}
	if cfg.rounds < 1 || cfg.largeRounds < 1 || cfg.writers < 1 || cfg.writes < cfg.writers ||
		cfg.deep < 1 || cfg.workSize < 1 {
		return cfg, errors.New("--rounds, --large-rounds, --writers, --writes, --group-size and --work-size must be positive (and --writes >= --writers)")
	}
	if cfg.writes > cfg.workSize {
		return cfg, fmt.Errorf("--writes %d needs a work store of at least as many snapshots (--work-size %d)", cfg.writes, cfg.workSize)
	}
	return cfg, nil
}

// parseSizes parses "1000,10k,100000" (k and m suffixes allowed), sorted.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		mul := 1
		switch {
		case strings.HasSuffix(f, "k"):
			mul, f = 1000, strings.TrimSuffix(f, "k")
		case strings.HasSuffix(f, "m"):
			mul, f = 1000000, strings.TrimSuffix(f, "m")
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--sizes: %q is not a positive number", f)
		}
		out = append(out, n*mul)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// parseBytes parses "1g", "256m", "64k" or a number of bytes.
func parseBytes(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mul := int64(1)
	for suf, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			mul, s = m, strings.TrimSuffix(s, suf)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mul, nil
}

// moduleRoot finds the directory of go.mod from the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the pbsfs module; run from /work/main")
	}
	return filepath.Dir(mod), nil
}

func run(cfg config) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if cfg.out == "" && !cfg.quick {
		cfg.out = root
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()

	cl := newCleaner(os.Stderr)
	defer cl.run()
	stopSignals := cl.onSignals(cancel)
	defer stopSignals()
	watchdog := time.AfterFunc(cfg.timeout+time.Minute, func() {
		// The context expired a minute ago and the run still has not come
		// back: something is stuck in a FUSE request. Tear down from here.
		fmt.Fprintln(os.Stderr, "bench: timed out and stuck; cleaning up and exiting")
		cl.run()
		os.Exit(3)
	})
	defer watchdog.Stop()

	b, err := newBench(ctx, cfg, root, cl)
	if err == nil {
		err = b.runAll(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}
