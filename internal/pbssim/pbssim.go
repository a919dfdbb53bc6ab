// Package pbssim plays PBS's side of the active-operations file in tests:
// an independent implementation of what PBS's task_tracking does (not the
// activeops package's code), run in a second process — the test binary
// started again with PBSFS_PBSSIM set (RunIfChild in TestMain) — so that
// pbsfs's registrations are read and raced by another process, under the
// same lock, as on a PBS host.
package pbssim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Env names the variable that makes the test binary a pbssim child.
const Env = "PBSFS_PBSSIM"

// entry is PBS's TaskOperations entry, read into a map so that nothing of
// an entry is lost by this reader.
type entry = map[string]any

// lockFile takes PBS's lock of the store's active-operations file.
func lockFile(dir, store string) (*os.File, error) {
	lf, err := os.OpenFile(filepath.Join(dir, store+".lock"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o660)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

// readList reads and parses the file (missing = empty) as serde would.
func readList(dir, store string) ([]entry, []byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, store))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var list []entry
	if err := json.Unmarshal(data, &list); err != nil || list == nil {
		return nil, data, fmt.Errorf("unparsable active-operations file %q: %v", data, err)
	}
	return list, data, nil
}

// startTime is field 22 of /proc/<pid>/stat, or ok=false.
func startTime(pid int) (uint64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// Update is PBS ≥ 4.0.21's update_active_operations for this process:
// lock, read, drop entries of processes not running, add delta to kind
// ("read" or "write") of the own entry or append it (PBS keeps it at
// zero), write a temp file, rename.
func Update(dir, store, kind string, delta int64) error {
	lf, err := lockFile(dir, store)
	if err != nil {
		return err
	}
	defer lf.Close()
	list, _, err := readList(dir, store)
	if err != nil {
		return err
	}
	me := os.Getpid()
	myStart, _ := startTime(me)
	var out []entry
	found := false
	for _, e := range list {
		pid := int(e["pid"].(float64))
		if _, ok := startTime(pid); !ok {
			continue
		}
		if pid == me {
			ops := e["active_operations"].(map[string]any)
			ops[kind] = ops[kind].(float64) + float64(delta)
			found = true
		}
		out = append(out, e)
	}
	if !found {
		ops := map[string]any{"read": 0, "write": 0}
		ops[kind] = delta
		out = append(out, entry{"pid": me, "starttime": myStart, "active_operations": ops})
	}
	if out == nil {
		out = []entry{}
	}
	data, _ := json.Marshal(out)
	tmp := filepath.Join(dir, ".pbssim-"+strconv.Itoa(me))
	if err := os.WriteFile(tmp, data, 0o660); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, store))
}

// Sample is what the reader child saw once, under the lock.
type Sample struct {
	Read, Write int64 // sums over live entries
	// ByPID are the counts of the live entries.
	ByPID map[int][2]int64
	Bad   string // the file's content if it did not parse
}

// RunIfChild runs the child side when Env is set and exits; otherwise it
// returns. Put it first in TestMain.
//
//	writer DIR STORE N   registers N reads, one update each, prints "done",
//	                     then keeps its entry alive until stdin closes
//	reader DIR STORE     reads the file under the lock every few ms and
//	                     prints one JSON Sample per line until stdin closes
func RunIfChild() {
	spec := os.Getenv(Env)
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	if len(f) < 3 {
		os.Exit(2)
	}
	stdinClosed := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	switch f[0] {
	case "writer":
		n, _ := strconv.Atoi(f[3])
		for range n {
			if err := Update(f[1], f[2], "read", 1); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		fmt.Println("done")
		<-stdinClosed
	case "reader":
		w := bufio.NewWriter(os.Stdout)
		for {
			select {
			case <-stdinClosed:
				w.Flush()
				os.Exit(0)
			case <-time.After(3 * time.Millisecond):
			}
			json.NewEncoder(w).Encode(sample(f[1], f[2]))
			w.Flush()
		}
	}
	os.Exit(0)
}

func sample(dir, store string) Sample {
	s := Sample{ByPID: map[int][2]int64{}}
	lf, err := lockFile(dir, store)
	if err != nil {
		s.Bad = err.Error()
		return s
	}
	defer lf.Close()
	list, data, err := readList(dir, store)
	if err != nil {
		s.Bad = string(data) + " " + err.Error()
		return s
	}
	for _, e := range list {
		pid := int(e["pid"].(float64))
		st, ok := startTime(pid)
		if !ok || st != uint64(e["starttime"].(float64)) {
			continue
		}
		ops := e["active_operations"].(map[string]any)
		r, w := int64(ops["read"].(float64)), int64(ops["write"].(float64))
		s.Read += r
		s.Write += w
		s.ByPID[pid] = [2]int64{r, w}
	}
	return s
}

// Child is a running pbssim child.
type Child struct {
	Cmd   *exec.Cmd
	stdin io.WriteCloser
	Out   *bufio.Scanner
}

// Start starts the test binary as a child with spec (see RunIfChild).
func Start(spec string) (*Child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), Env+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &Child{Cmd: cmd, stdin: stdin, Out: sc}, nil
}

// Stop closes the child's stdin and waits for it.
func (c *Child) Stop() error {
	c.stdin.Close()
	return c.Cmd.Wait()
}
