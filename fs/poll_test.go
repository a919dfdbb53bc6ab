package fs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"pbsfs/internal/pbssim"
	"strings"
	"sync/atomic"
	"testing"

	fusefs "bazil.org/fuse/fs"
)

// A Go program's opens cost no POLL round trip: the first POLL of the mount
// is refused with ENOSYS and the kernel stops asking (see nodeBase.Poll).
// The reader is a child process running this test binary (TestMain): the
// Go runtime registers every opened regular file with epoll, which is what
// sends POLL. bazil's default answer ("ready") would make every open ask
// again.
func TestGoReadersCostNoPollRequests(t *testing.T) {
	e := newEnv(t)
	var polls atomic.Int32
	debug := func(msg any) {
		if strings.HasPrefix(fmt.Sprint(msg), "<- Poll ") {
			polls.Add(1)
		}
	}
	mnt := mountEnvConfig(t, e, &fusefs.Config{Debug: debug})
	snap := filepath.Join(mnt, "vm/100", tFirst)
	files := []string{filepath.Join(snap, NotesName), filepath.Join(snap, ManifestName), filepath.Join(mnt, "vm/100", NotesName), filepath.Join(mnt, "vm/100", OwnerName)}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), readFilesEnv+"="+strings.Join(files, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reader: %v\n%s", err, out)
	}
	if n := polls.Load(); n > 1 {
		t.Errorf("%d POLL requests for %d opens by a Go program, want at most the first", n, 3*len(files))
	}
}

// TestMain runs this binary as the Go reader of
// TestGoReadersCostNoPollRequests when asked to (by the environment), and
// as the test binary otherwise.
func TestMain(m *testing.M) {
	pbssim.RunIfChild() // the PBS side of neighbour_test.go
	if list := os.Getenv(readFilesEnv); list != "" {
		for range 3 {
			for _, p := range strings.Split(list, "\n") {
				if _, err := os.ReadFile(p); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// readFilesEnv lists the files the child reads, one per line.
const readFilesEnv = "PBSFS_TEST_READ_FILES"
