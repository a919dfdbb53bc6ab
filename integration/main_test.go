package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"pbsfs/lock"
)

// pbsfsBin is the pbsfs binary built by TestMain ("" if the build failed;
// buildErr says why).
var (
	pbsfsBin string
	buildErr error
)

// Environment of the lock-holding helper process (the test binary re-executed).
const (
	envHelper  = "PBSFS_IT_HELPER" // "holdlock"
	envLockCfg = "PBSFS_IT_LOCK"   // scheme|dir|store|base
	envLockObj = "PBSFS_IT_OBJECT" // kind|ns (colon-joined)|rel, kind = snapshot, shared-snapshot, group, manifest
)

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) != "" {
		os.Exit(helperMain())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pbsfs-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pbsfsBin, buildErr = buildPbsfs(dir)
	defer s3srv.Close() // s3_test.go
	defer removeS3Sample()
	return m.Run()
}

// buildPbsfs compiles cmd/pbsfs into dir, with the race detector if this
// test binary has it.
func buildPbsfs(dir string) (string, error) {
	bin := filepath.Join(dir, "pbsfs")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "pbsfs/cmd/pbsfs")
	cmd := exec.Command(goTool(), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// goTool finds the go command: on PATH, else in $GOROOT/bin (go test sets
// GOROOT for test binaries), else where the project's machines have it.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// helperMain holds a PBS lock, as a backup, restore or verify task would,
// until its stdin is closed. It prints "locked" once it holds the lock, or
// "error: ..." and exits 1.
func helperMain() int {
	cfgParts := strings.Split(os.Getenv(envLockCfg), "|")
	objParts := strings.Split(os.Getenv(envLockObj), "|")
	if len(cfgParts) != 4 || len(objParts) != 3 {
		fmt.Println("error: bad helper environment")
		return 1
	}
	l, err := lock.New(lock.Config{
		Scheme: lock.Scheme(cfgParts[0]), Dir: cfgParts[1], Store: cfgParts[2], Base: cfgParts[3],
		UID: -1, GID: -1,
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	p := lock.Path{Rel: objParts[2]}
	if objParts[1] != "" {
		p.NS = strings.Split(objParts[1], ":")
	}
	var lk *lock.Lock
	switch objParts[0] {
	case "snapshot":
		lk, err = l.LockSnapshot(p, false)
	case "shared-snapshot":
		lk, err = l.LockSnapshot(p, true)
	case "group":
		lk, err = l.LockGroup(p)
	case "manifest":
		lk, err = l.LockManifest(context.Background(), p, lock.ManifestTimeout)
	default:
		err = fmt.Errorf("unknown lock kind %q", objParts[0])
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	if err := lk.Unlock(); err != nil {
		fmt.Fprintln(os.Stderr, "unlock:", err)
		return 1
	}
	return 0
}
