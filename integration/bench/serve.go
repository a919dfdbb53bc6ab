package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	pbsfs "pbsfs/fs"
	"pbsfs/lock"
)

// serveCommand is the hidden first argument that makes this binary serve a
// pbsfs mount itself, for --profile: the same fs and datastore packages as
// cmd/pbsfs with the same mount options and defaults, plus a CPU profile of
// the whole mount and a heap profile at its end.
const serveCommand = "__serve-profiled"

// serveProfiled: PREFIX LOCKDIR STORE MOUNTPOINT [archives]. Writes
// PREFIX.cpu.pprof and PREFIX.heap.pprof; stops on unmount, SIGINT or
// SIGTERM (which unmount). Archives are shown only with the fifth argument
// (the manifest-only stores have none to show).
func serveProfiled(args []string) int {
	if len(args) != 4 && (len(args) != 5 || args[4] != "archives") {
		fmt.Fprintln(os.Stderr, "usage: bench "+serveCommand+" PREFIX LOCKDIR STORE MOUNTPOINT [archives]")
		return 2
	}
	prefix, lockDir, storePath, mnt := args[0], args[1], args[2], args[3]
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "pbsfs (profiled):", err)
		return 1
	}
	store, err := datastore.Open(storePath, datastore.Options{
		Lock:     lock.Config{Scheme: lock.Run, Dir: lockDir, Store: "bench", UID: -1, GID: -1},
		Archives: datastore.ArchiveOptions{Enabled: len(args) == 5},
	})
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	cpu, err := os.Create(prefix + ".cpu.pprof")
	if err != nil {
		return fail(err)
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return fail(err)
	}
	filesys := pbsfs.New(store, pbsfs.Options{})
	conn, err := fuse.Mount(mnt, pbsfs.MountOptions(false, false)...)
	if err != nil {
		pprof.StopCPUProfile()
		return fail(err)
	}
	defer conn.Close()
	srv := fusefs.New(conn, nil)
	filesys.SetServer(srv)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = fuse.Unmount(mnt)
	}()
	fmt.Fprintf(os.Stderr, "pbsfs: serving %s at %s\n", store.Path(), mnt)
	serr := srv.Serve(filesys)
	pprof.StopCPUProfile()
	runtime.GC()
	if heap, err := os.Create(prefix + ".heap.pprof"); err == nil {
		_ = pprof.Lookup("heap").WriteTo(heap, 0)
		heap.Close()
	}
	runtime.KeepAlive(srv)
	runtime.KeepAlive(filesys)
	if serr != nil {
		return fail(serr)
	}
	return 0
}
