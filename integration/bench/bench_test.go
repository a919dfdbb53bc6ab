package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pbsfs/demo"
)

// Smoke tests of the bench's helpers: no mounts, no timing assertions.

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("100k, 1000,10000")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1000, 10000, 100000}; !slices.Equal(got, want) {
		t.Errorf("parseSizes = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "x", "0", "-5", "1,,2"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags([]string{"--quick"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rounds != 1 || cfg.writes != 100 || cfg.deep != 1000 || !slices.Equal(cfg.sizes, []int{200, 1000}) {
		t.Errorf("quick defaults: %+v", cfg)
	}
	cfg, err = parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rounds != 3 || cfg.writes != 1000 || !slices.Equal(cfg.sizes, []int{1000, 10000, 100000}) {
		t.Errorf("full defaults: %+v", cfg)
	}
	if _, err := parseFlags([]string{"--writes", "5000", "--work-size", "1000"}, io.Discard); err == nil {
		t.Error("more writes than snapshots accepted")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(c.in)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("median reordered its input")
		}
	}
}

func TestOrderRotates(t *testing.T) {
	sys := []system{sysRaw, sysBindfs, sysPbsfs}
	first := map[system]bool{}
	for r := 0; r < 3; r++ {
		o := order(r, sys)
		if len(o) != 3 {
			t.Fatalf("order(%d) = %v", r, o)
		}
		first[o[0]] = true
		s := slices.Clone(o)
		slices.Sort(s)
		if !slices.Equal(s, sys) {
			t.Errorf("order(%d) = %v is not a permutation", r, o)
		}
	}
	if len(first) != 3 {
		t.Errorf("not every system runs first once in three rounds: %v", first)
	}
}

func TestParseFuseInodes(t *testing.T) {
	slab := "slabinfo - version: 2.1\n# name <active_objs> <num_objs> ...\nfuse_request 0 0 152 26 1\nfuse_inode 121788 121800 896 18 4 : tunables 0 0 0\ndentry 5 5 192 21 1\n"
	if n, err := parseFuseInodes([]byte(slab)); err != nil || n != 121788 {
		t.Errorf("parseFuseInodes = %d, %v", n, err)
	}
	if _, err := parseFuseInodes([]byte("dentry 5 5 192 21 1\n")); err == nil {
		t.Error("no fuse_inode line accepted")
	}
}

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM([]byte("Name:\tpbsfs\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n"))
	if err != nil || got != 12345<<10 {
		t.Errorf("parseVmHWM = %d, %v", got, err)
	}
	if _, err := parseVmHWM([]byte("Name:\tx\n")); err == nil {
		t.Error("missing VmHWM accepted")
	}
	// Our own process has one.
	if v, err := vmHWM(os.Getpid()); err != nil || v <= 0 {
		t.Errorf("vmHWM(self) = %d, %v", v, err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("got %q", got)
	}
	if got := unescapeMountinfo(`/plain`); got != "/plain" {
		t.Errorf("got %q", got)
	}
}

func TestCleanerRunsOnceNewestFirst(t *testing.T) {
	var log []string
	c := newCleaner(io.Discard)
	c.add("a", func() error { log = append(log, "a"); return nil })
	now := c.add("b", func() error { log = append(log, "b"); return nil })
	c.add("c", func() error { log = append(log, "c"); return errors.New("reported, not fatal") })
	if err := now(); err != nil {
		t.Fatal(err)
	}
	_ = now() // runs once
	c.run()
	c.run() // once
	if want := []string{"b", "c", "a"}; !slices.Equal(log, want) {
		t.Errorf("clean-up order %v, want %v", log, want)
	}
}

func TestWalkPlotIsWellFormedSVG(t *testing.T) {
	ss := []series{
		{name: "raw, warm", sys: sysRaw, points: []point{{1000, 0.05}, {10000, 0.5}, {100000, 6}}},
		{name: "pbsfs, cold", sys: sysPbsfs, dashed: true, points: []point{{1000, 1.2}, {10000, 13}, {100000, 140}}},
	}
	for _, in := range [][]series{ss, nil} {
		svg := walkPlot(in)
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("not well-formed: %v\n%s", err, svg)
			}
		}
		if !strings.HasPrefix(svg, "<svg ") {
			t.Errorf("does not start with <svg")
		}
	}
}

func TestReportKeepsHandWrittenTail(t *testing.T) {
	b := &bench{cfg: config{sizes: []int{1000, 10000}, rounds: 2, largeRounds: 2, deep: 10, workSize: 1000, writes: 10, writers: 2}}
	for _, size := range b.cfg.sizes {
		r := b.newResult("walk-warm", "walk, warm ("+snapshots(size)+")", size, sysBindfs)
		r.add(sysRaw, 0.01*float64(size)/1000)
		r.add(sysBindfs, 0.1*float64(size)/1000)
		r.add(sysPbsfs, 0.12*float64(size)/1000)
		r.add(sysPbsfs, 0.11*float64(size)/1000)
		b.results = append(b.results, r)
	}
	b.noteRSS("walk, 100,000 snapshots", 150<<20)
	tail := keptTail("old generated text\n" + keepMarker + "\n## Optimizations\nby hand\n")
	md := b.markdown(tail)
	for _, want := range []string{"| walk, warm (1,000 snapshots) |", "1.15×", "## Optimizations\nby hand\n", "≤200 MB | yes", "![walk time"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "old generated text") {
		t.Error("report kept the old generated part")
	}
	if g := b.growths(); len(g) != 1 || g[0].pbsfs < 0.99 || g[0].pbsfs > 1.01 {
		t.Errorf("growths = %+v", g)
	}
	if s := b.textTable(); !strings.Contains(s, "walk, warm (10,000 snapshots)") {
		t.Errorf("text table:\n%s", s)
	}
}

// TestWorkloadsOnRawStore runs the workload functions on a small generated
// store, without any mount.
func TestWorkloadsOnRawStore(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	if _, err := demo.Large(store, demo.LargeOptions{Groups: 2, SnapshotsPerGroup: 3, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	l, err := scanLayout(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.groups) != 2 || len(l.snapshots) != 6 {
		t.Fatalf("layout: %d groups, %d snapshots", len(l.groups), len(l.snapshots))
	}
	n, err := walk(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	// .chunks .lock, 1-2 type dirs, 2 groups with owner, 6 snapshots with a blob each.
	if n < 2+1+2+2+6+6 || n > 2+2+2+2+6+6 {
		t.Errorf("walk stat'ed %d entries", n)
	}
	if k, err := listDir(filepath.Join(store, l.groups[0])); err != nil || k != 4 {
		t.Errorf("listDir = %d, %v (want 3 snapshots and owner)", k, err)
	}
	var blobs []string
	for _, s := range l.snapshots {
		blobs = append(blobs, filepath.Join(store, s, "index.json.blob"))
	}
	if total, err := readFiles(context.Background(), blobs); err != nil || total == 0 {
		t.Errorf("readFiles = %d, %v", total, err)
	}
	if got := spread(l.snapshots, 3); len(got) != 3 || got[0] != l.snapshots[0] {
		t.Errorf("spread = %v", got)
	}
	// The bare writer writes exactly the blob a notes update would.
	text := noteText("bare", 1, 2)
	if len(text) != len(noteText("pbsfs*", 1, 2)) {
		t.Error("note texts of different writers differ in length")
	}
	data, err := withNotes(blobs[0], text)
	if err != nil {
		t.Fatal(err)
	}
	if err := bareWrite(filepath.Dir(blobs[0]), "index.json.blob", data); err != nil {
		t.Fatal(err)
	}
	if got, err := notesOf(blobs[0]); err != nil || got != text {
		t.Errorf("notes after the bare write: %q, %v", got, err)
	}
	if got, _ := os.ReadFile(blobs[0]); !bytes.Equal(got, data) {
		t.Error("the bare write did not write the blob")
	}
	ents, _ := os.ReadDir(filepath.Dir(blobs[0]))
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	err = parallel(10, 3, func(i int) error {
		if i == 7 {
			return errors.New("seven")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "seven") {
		t.Errorf("parallel lost an error: %v", err)
	}
}
