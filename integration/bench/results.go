package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// result is one workload's figures: seconds per round and system.
type result struct {
	key      string // what the target is looked up by
	label    string
	size     int // snapshots involved (walk: store size)
	baseline system
	baseName string // how the baseline is called when not by its system name
	vals     [numSystems][]float64
	note     string
	rawName  string  // what the raw-store column holds, when not the raw store
	tgt      *target // the goal, when not looked up by key in targets
}

func (b *bench) newResult(key, label string, size int, baseline system) *result {
	return &result{key: key, label: label, size: size, baseline: baseline}
}

func (r *result) add(sys system, secs float64) { r.vals[sys] = append(r.vals[sys], secs) }

// med is the median of a system's figures.
func (r *result) med(sys system) (float64, bool) {
	if len(r.vals[sys]) == 0 {
		return 0, false
	}
	return median(r.vals[sys]), true
}

// ratio is pbsfs's median over the baseline's.
func (r *result) ratio() (float64, bool) {
	p, ok1 := r.med(sysPbsfs)
	q, ok2 := r.med(r.baseline)
	if !ok1 || !ok2 || q <= 0 {
		return 0, false
	}
	return p / q, true
}

func (r *result) baselineName() string {
	if r.baseName != "" {
		return r.baseName
	}
	return r.baseline.String()
}

// median of xs (mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// target is a goal of issue #5: pbsfs ≤ max × baseline.
type target struct {
	max  float64
	desc string
}

// targets by result key.
var targets = map[string]target{
	"walk-warm":   {1.3, "≤1.3× bindfs"},
	"walk-cold":   {2.0, "≤2× bindfs"},
	"list-warm":   {1.3, "≤1.3× bindfs"},
	"list-cold":   {1.3, "≤1.3× bindfs"},
	"notes-cold":  {2.0, "≤2× bindfs blobs"},
	"notes-warm":  {1.2, "≤1.2× bindfs blobs"},
	"write-seq":   {1.5, "≤1.5× bare"},
	"write-conc":  {1.5, "≤1.5× bare (as sequential)"},
	"archive-seq": archiveTarget,
}

// rssTarget is the peak RSS goal at 100,000 snapshots.
const rssTarget = 200 << 20

// verdict is "yes", "no" or "" (no target).
func (r *result) verdict() (t target, met string) {
	t, ok := targets[r.key]
	if r.tgt != nil {
		t, ok = *r.tgt, true
	}
	if !ok {
		return t, ""
	}
	q, ok := r.ratio()
	if !ok {
		return t, ""
	}
	if q <= t.max {
		return t, "yes"
	}
	return t, "no"
}

// finish records a result and prints its line.
func (b *bench) finish(r *result) {
	b.results = append(b.results, r)
	var parts []string
	for sys := system(0); sys < numSystems; sys++ {
		if _, ok := r.med(sys); ok {
			name := sys.String()
			if sys == sysRaw && r.rawName != "" {
				name = r.rawName
			}
			if sys == r.baseline && r.baseName != "" {
				name = r.baseName
			}
			parts = append(parts, fmt.Sprintf("%s %s", name, secsRange(r.vals[sys])))
		}
	}
	line := fmt.Sprintf("%-62s %s", r.label+":", strings.Join(parts, ", "))
	if q, ok := r.ratio(); ok {
		t, met := r.verdict()
		line += fmt.Sprintf("  => %.2f× %s", q, r.baselineName())
		if met != "" {
			line += fmt.Sprintf(" (target %s: %s)", t.desc, met)
		}
	}
	fmt.Println(line)
}

// secs formats a duration in seconds with sensible precision.
func secs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f s", v)
	case v >= 10:
		return fmt.Sprintf("%.1f s", v)
	case v >= 1:
		return fmt.Sprintf("%.2f s", v)
	case v >= 0.01:
		return fmt.Sprintf("%.3f s", v)
	default:
		return fmt.Sprintf("%.2f ms", v*1000)
	}
}

// secsRange is "median (min–max)" or just the value for one round.
func secsRange(vs []float64) string {
	if len(vs) == 0 {
		return "—"
	}
	m := secs(median(vs))
	if len(vs) == 1 {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, strings.TrimSuffix(secs(slices.Min(vs)), " s"), secs(slices.Max(vs)))
}

// growth compares pbsfs's walk time per snapshot at the largest size with
// that at the size before it (1.0 = perfectly linear), next to the same for
// bindfs.
type growth struct {
	key           string // walk-warm or walk-cold
	from, to      int
	pbsfs, bindfs float64
}

// growthLimit: time per snapshot may grow this much from one size to the
// next (ten times larger) and still count as linear.
const growthLimit = 1.5

func (b *bench) growths() []growth {
	var out []growth
	for _, key := range []string{"walk-warm", "walk-cold"} {
		var rs []*result
		for _, r := range b.results {
			if r.key == key {
				rs = append(rs, r)
			}
		}
		if len(rs) < 2 {
			continue
		}
		slices.SortFunc(rs, func(a, c *result) int { return a.size - c.size })
		lo, hi := rs[len(rs)-2], rs[len(rs)-1]
		per := func(r *result, sys system) float64 {
			m, _ := r.med(sys)
			return m / float64(r.size)
		}
		out = append(out, growth{
			key: key, from: lo.size, to: hi.size,
			pbsfs:  per(hi, sysPbsfs) / per(lo, sysPbsfs),
			bindfs: per(hi, sysBindfs) / per(lo, sysBindfs),
		})
	}
	return out
}

// textTable is the summary printed at the end.
func (b *bench) textTable() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-64s %-22s %-22s %-22s %-16s %s\n", "workload", "raw/bare", "bindfs", "pbsfs", "pbsfs/base", "target")
	for _, r := range b.results {
		cell := func(sys system) string { return secsRange(r.vals[sys]) }
		q := "—"
		if v, ok := r.ratio(); ok {
			q = fmt.Sprintf("%.2f× %s", v, r.baselineName())
		}
		t, met := r.verdict()
		tgt := ""
		if met != "" {
			tgt = t.desc + ": " + met
		}
		fmt.Fprintf(&sb, "%-64s %-22s %-22s %-22s %-16s %s\n", r.label, cell(sysRaw), cell(sysBindfs), cell(sysPbsfs), q, tgt)
	}
	for _, g := range b.growths() {
		fmt.Fprintf(&sb, "%s growth %s→%s: time per snapshot ×%.2f for pbsfs, ×%.2f for bindfs (linear ≤%.1f: %s)\n",
			g.key, thousands(g.from), thousands(g.to), g.pbsfs, g.bindfs, growthLimit, yesNo(g.pbsfs <= growthLimit))
	}
	for _, f := range b.rss {
		fmt.Fprintf(&sb, "pbsfs peak RSS (VmHWM), %s: %s\n", f.label, mib(f.bytes))
	}
	return sb.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func mib(v int64) string { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }
