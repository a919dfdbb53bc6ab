package activeops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"pbsfs/internal/pbssim"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	pbssim.RunIfChild()
	os.Exit(m.Run())
}

func newTracker(t *testing.T, dir string, legacy bool) *Tracker {
	t.Helper()
	tr, err := New(Options{Dir: dir, Store: "store1", UID: -1, GID: -1, LegacyTracking: legacy})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func readList(t *testing.T, file string) []Entry {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(data)
	if err != nil {
		t.Fatalf("file does not parse: %v: %q", err, data)
	}
	return l
}

// deadPID is the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}

func TestRegisterFormatAndIdle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tr := newTracker(t, dir, false)
	if reg, err := tr.Add(ctx, Write, 1); err != nil || !reg {
		t.Fatal(reg, err)
	}
	data, _ := os.ReadFile(tr.File())
	pid, start := tr.Self()
	want := fmt.Sprintf(`[{"pid":%d,"starttime":%d,"active_operations":{"read":0,"write":1}}]`, pid, start)
	if string(data) != want {
		t.Fatalf("file %q, want %q", data, want)
	}
	if st, _ := os.Stat(tr.File()); st.Mode().Perm() != 0o660 {
		t.Errorf("mode %v", st.Mode())
	}
	if c, err := Sum(tr.File(), ""); err != nil || c != (Counts{Write: 1}) {
		t.Fatal(c, err)
	}
	if _, err := tr.Add(ctx, Write, -1); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(tr.File()); string(data) != "[]" {
		t.Fatalf("idle: file %q, want []", data)
	}
}

func TestDeadDroppedOthersKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tr := newTracker(t, dir, false)
	dead := deadPID(t)
	// PID 1 is alive; its start time is wrong on purpose: PBS keeps such
	// an entry (it just does not count).
	pre := fmt.Sprintf(`[{"pid":%d,"starttime":5,"active_operations":{"read":1,"write":0}},`+
		`{"pid":1,"starttime":999999999,"active_operations":{"read":2,"write":3}}]`, dead)
	if err := os.WriteFile(tr.File(), []byte(pre), 0o660); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Add(ctx, Read, 1); err != nil {
		t.Fatal(err)
	}
	l := readList(t, tr.File())
	if len(l) != 2 || l[0].PID != 1 || l[0].Ops != (Counts{2, 3}) || l[0].StartTime != 999999999 {
		t.Fatalf("list %+v", l)
	}
	if c, _ := Sum(tr.File(), ""); c != (Counts{Read: 1}) {
		t.Fatalf("sum %+v (the mismatching pid 1 entry must not count)", c)
	}
}

func TestUnparsableLeftAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tr := newTracker(t, dir, false)
	for _, bad := range []string{"", "{", `{"pid":1}`, "[] x"} {
		os.WriteFile(tr.File(), []byte(bad), 0o660)
		if _, err := tr.Add(ctx, Write, 1); !errors.Is(err, ErrUnparsable) {
			t.Errorf("%q: %v", bad, err)
		}
		if data, _ := os.ReadFile(tr.File()); string(data) != bad {
			t.Errorf("%q rewritten to %q", bad, data)
		}
	}
}

func TestLegacyTracking(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tr := newTracker(t, dir, true)
	// Empty list: PBS < 4.0.21 would only track the next process that
	// registers into an empty list, so do not take that place.
	if reg, err := tr.Add(ctx, Read, 1); err != nil || reg {
		t.Fatalf("registered into an empty list: %v %v", reg, err)
	}
	if _, err := os.Stat(tr.File()); err == nil {
		if l := readList(t, tr.File()); len(l) != 0 {
			t.Fatalf("list %+v", l)
		}
	}
	// A live entry of another process: registering is safe.
	ps, _ := readProcStat("/proc", 1)
	os.WriteFile(tr.File(), []byte(fmt.Sprintf(`[{"pid":1,"starttime":%d,"active_operations":{"read":0,"write":0}}]`, ps.start)), 0o660)
	if reg, err := tr.Add(ctx, Read, 1); err != nil || !reg {
		t.Fatalf("not registered beside a live entry: %v %v", reg, err)
	}
	if c, _ := Sum(tr.File(), ""); c != (Counts{Read: 1}) {
		t.Fatalf("sum %+v", c)
	}
}

// TestConcurrentWithPBS: goroutines of this process register and
// deregister in a loop while a second process updates the file the way PBS
// does and a third reader checks that the file always parses. Nothing of
// PBS's is lost, and this process's entry is gone at the end.
func TestConcurrentWithPBS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tr := newTracker(t, dir, false)
	const pbsOps = 60
	pbs, err := pbssim.Start(fmt.Sprintf("writer %s store1 %d", dir, pbsOps))
	if err != nil {
		t.Fatal(err)
	}
	defer pbs.Stop()

	stop := make(chan struct{})
	var readerErr error
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(tr.File())
			if err == nil {
				if _, err := Parse(data); err != nil {
					readerErr = fmt.Errorf("%w: %q", err, data)
					return
				}
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			k := Kind(g % 2)
			for range 25 {
				if _, err := tr.Add(ctx, k, 1); err != nil {
					errs <- err
					return
				}
				if _, err := tr.Add(ctx, k, -1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	if !pbs.Out.Scan() || pbs.Out.Text() != "done" {
		t.Fatalf("PBS-like writer: %q", pbs.Out.Text())
	}
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	l := readList(t, tr.File())
	if len(l) != 1 || int(l[0].PID) != pbs.Cmd.Process.Pid || l[0].Ops != (Counts{Read: pbsOps}) {
		t.Fatalf("after the run: %+v, want only the PBS-like writer's entry with read=%d", l, pbsOps)
	}
}
