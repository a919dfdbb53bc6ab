package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
)

// profileFlags are --cpuprofile and --memprofile: pprof profiles of a
// running mount, for `go tool pprof` (the benchmark command's --profile
// passes them).
type profileFlags struct {
	cpu string // CPU profile of the whole mount; "" = none
	mem string // heap profile when the mount ends; "" = none
}

// startCPU begins the CPU profile; the returned stop ends it. A write
// error at the end is logged.
func (p profileFlags) startCPU(log *slog.Logger) (stop func(), err error) {
	if p.cpu == "" {
		return func() {}, nil
	}
	f, err := os.Create(p.cpu)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Warn("writing the CPU profile", "file", p.cpu, "err", err)
		}
	}, nil
}

// writeHeap writes the heap profile, if asked for, after a collection.
// served is what the mount served (the file system and its server): it
// stays reachable until the profile is written, so the profile shows the
// nodes and caches the mount held at its end.
func (p profileFlags) writeHeap(log *slog.Logger, served ...any) {
	if p.mem == "" {
		return
	}
	if err := writeHeapProfile(p.mem); err != nil {
		log.Warn("writing the heap profile", "file", p.mem, "err", err)
	}
	runtime.KeepAlive(served)
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
