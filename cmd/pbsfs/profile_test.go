package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// --cpuprofile and --memprofile leave pprof profiles (gzipped protocol
// buffers) once the mount ends.
func TestMountProfiles(t *testing.T) {
	needFUSE(t)
	store, mnt, locks := newStore(t)
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "heap.pprof")
	p := startPBSFS(t, "mount", "--read-only", "--lock-scheme", "run", "--lock-dir", locks, "--store", "demo",
		"--cpuprofile", cpu, "--memprofile", mem, store, mnt)
	p.waitServing()
	if _, err := os.ReadDir(filepath.Join(mnt, "vm")); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(); code != ExitOK {
		t.Fatalf("exit code %d\n%s", code, p.stderr.String())
	}
	for _, f := range []string{cpu, mem} {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %d bytes, %v: not a pprof profile", f, len(b), err)
		}
	}
}
