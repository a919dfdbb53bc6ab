package main

// FUSE requests per workload, counted from the servers' own debug logs in
// separate, untimed runs: pbsfs --debug logs every request bazil receives
// ("fuse: <- Lookup [...]"), bindfs -d every request libfuse receives
// ("unique: 5, opcode: LOOKUP (1), ..."). Both count what the kernel sent.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// opCounter counts requests by opcode (libfuse's names).
type opCounter struct {
	mu    sync.Mutex
	ops   map[string]int
	lines int
}

func newOpCounter() *opCounter { return &opCounter{ops: map[string]int{}} }

// add counts the request a log line shows, if it shows one.
func (c *opCounter) add(line string) {
	op := parseOp(line)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines++
	if op != "" {
		c.ops[op]++
	}
}

// parseOp finds the opcode in a pbsfs --debug or bindfs -d line.
func parseOp(line string) string {
	if _, rest, ok := strings.Cut(line, "opcode: "); ok { // libfuse
		op, _, _ := strings.Cut(rest, " ")
		if op == "RELEASEDIR" {
			op = "RELEASE" // bazil does not tell them apart
		}
		return op
	}
	_, rest, ok := strings.Cut(line, "fuse: <- ") // bazil
	if !ok {
		return ""
	}
	op, args, _ := strings.Cut(rest, " ")
	op = strings.ToUpper(op)
	dir := strings.Contains(args, " dir=true")
	switch {
	case op == "OPEN" && dir:
		return "OPENDIR"
	case op == "READ" && dir:
		return "READDIR"
	case op == "BATCHFORGET":
		return "BATCH_FORGET"
	}
	return op
}

// snapshot waits until no line has come for a moment (the server has
// logged everything it received) and returns the counts.
func (c *opCounter) snapshot() map[string]int {
	last := -1
	for {
		c.mu.Lock()
		n := c.lines
		c.mu.Unlock()
		if n == last {
			break
		}
		last = n
		time.Sleep(300 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.ops))
	for k, v := range c.ops {
		out[k] = v
	}
	return out
}

// diffOps is after − before.
func diffOps(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// notAnswered are requests without a reply (or not part of a workload).
var notAnswered = map[string]bool{"FORGET": true, "BATCH_FORGET": true, "INIT": true, "DESTROY": true, "INTERRUPT": true}

// perEntry formats counts per entry: total, then each opcode, largest first.
func perEntry(ops map[string]int, entries int) string {
	total := 0
	var names []string
	for k, v := range ops {
		if notAnswered[k] {
			continue
		}
		total += v
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return ops[b] - ops[a] })
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(ops[k])/float64(entries)))
	}
	return fmt.Sprintf("**%.2f** (%s)", float64(total)/float64(entries), strings.Join(parts, ", "))
}

// mountCounting mounts store through sys with request logging on and
// returns the mount and its counter.
func (b *bench) mountCounting(ctx context.Context, sys system, store string) (*mount, *opCounter, error) {
	c := newOpCounter()
	if sys == sysPbsfs {
		b.pbsfsDebug = c
		defer func() { b.pbsfsDebug = nil }()
		m, err := b.mountSystem(ctx, sys, store)
		return m, c, err
	}
	// bindfs -d stays in the foreground and logs to stderr.
	b.mounts++
	dir := fmt.Sprintf("%s/bindfs-d-%d", b.mntDir, b.mounts)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, nil, err
	}
	m := &mount{sys: sys, dir: dir, store: store}
	cmd := exec.Command("bindfs", "-d", "--no-allow-other", store, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		os.Remove(dir)
		return nil, nil, fmt.Errorf("bindfs -d: %w", err)
	}
	m.cmd, m.exited, m.stderr = cmd, make(chan struct{}), newTailBuffer("")
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.add(sc.Text())
		}
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	m.close = b.cl.add("unmount "+dir, func() error { return m.unmount() })
	if err := waitMounted(ctx, dir, 10*time.Second); err != nil {
		m.close()
		return nil, nil, err
	}
	return m, c, nil
}

// pxarRequests counts the requests of the walk (cold, then warm on the
// same mount), of cat every file (cold) and of cp -a (cold), for bindfs
// over the extracted tree and for pbsfs in each archive.
func (b *bench) pxarRequests(ctx context.Context) error {
	d := b.px
	type sysDir struct {
		name  string
		sys   system
		store string
		sub   string
	}
	systems := []sysDir{
		{"bindfs", sysBindfs, d.extracted, ""},
		{"pbsfs v1", sysPbsfs, d.store, pxarV1.rel()},
		{"pbsfs split", sysPbsfs, d.store, pxarSplit.rel()},
	}
	type load struct {
		name string
		run  func(ctx context.Context, dir string) error
		warm bool // a second run on the same mount, after a cold one
	}
	walkRun := func(ctx context.Context, dir string) error { _, err := walk(ctx, dir); return err }
	loads := []load{
		{"walk, cold", walkRun, false},
		{"walk, warm", walkRun, true},
		{"cat every file, cold", func(ctx context.Context, dir string) error { _, _, err := catAll(ctx, dir); return err }, false},
		{"cp -a, cold", func(ctx context.Context, dir string) error {
			_, clean, err := b.cpA(ctx, dir)
			if cerr := clean(); err == nil {
				err = cerr
			}
			return err
		}, false},
	}
	rows := map[string]map[string]string{}
	for _, s := range systems {
		for _, l := range loads {
			if l.warm {
				continue // measured with the cold run before it
			}
			m, c, err := b.mountCounting(ctx, s.sys, s.store)
			if err != nil {
				return err
			}
			dir := filepath.Join(m.dir, s.sub)
			err = func() error {
				if err := b.coldStart(); err != nil {
					return err
				}
				before := c.snapshot()
				if err := l.run(ctx, dir); err != nil {
					return err
				}
				after := c.snapshot()
				if rows[l.name] == nil {
					rows[l.name] = map[string]string{}
				}
				rows[l.name][s.name] = perEntry(diffOps(before, after), d.entries)
				if l.name == "walk, cold" {
					if err := walkRun(ctx, dir); err != nil {
						return err
					}
					again := c.snapshot()
					if rows["walk, warm"] == nil {
						rows["walk, warm"] = map[string]string{}
					}
					rows["walk, warm"][s.name] = perEntry(diffOps(after, again), d.entries)
				}
				return nil
			}()
			if cerr := m.close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("request count, %s, %s: %w", s.name, l.name, err)
			}
		}
	}
	b.pxarReqs = nil
	for _, l := range loads {
		line := []string{l.name}
		for _, s := range systems {
			line = append(line, rows[l.name][s.name])
		}
		b.pxarReqs = append(b.pxarReqs, line)
		fmt.Printf("requests per entry, %s: bindfs %s; pbsfs v1 %s; pbsfs split %s\n", line[0], line[1], line[2], line[3])
	}
	return nil
}

func joinComma(parts []string) string { return strings.Join(parts, ", ") }
