package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The checks run before anything heavy (opening the store, detecting the
// lock scheme, mounting) so that a mistake on the command line gives a
// clear message and a specific exit code at once.

// checkDatastore verifies that path is a PBS datastore: a directory holding
// a .chunks directory. It returns the absolute, symlink-resolved path.
func checkDatastore(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", exitf(ExitDatastore, "datastore %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", exitf(ExitDatastore, "datastore %s does not exist", abs)
	case err != nil:
		return "", exitf(ExitDatastore, "datastore %s: %w", abs, err)
	case !st.IsDir():
		return "", exitf(ExitDatastore, "datastore %s is not a directory", abs)
	}
	cs, err := os.Stat(filepath.Join(abs, ".chunks"))
	if err != nil || !cs.IsDir() {
		return "", exitf(ExitDatastore, "%s is not a PBS datastore: it has no .chunks directory "+
			"(give the datastore's path, the directory configured as \"path\" in /etc/proxmox-backup/datastore.cfg)", abs)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", exitf(ExitDatastore, "datastore %s: %w", abs, err)
	}
	return real, nil
}

// checkMountpoint verifies that path is an existing, empty directory and
// not a dead FUSE mount. It returns the absolute, symlink-resolved path. A
// dead pbsfs mount on path is unmounted first, and stderr told so
// (clearDeadMount).
func checkMountpoint(path string, stderr io.Writer) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", path, err)
	}
	st, names, err := probeMountpoint(abs)
	for range maxDeadMounts {
		if !errors.Is(err, syscall.ENOTCONN) {
			break
		}
		if err := clearDeadMount(abs, stderr); err != nil {
			return "", err
		}
		st, names, err = probeMountpoint(abs)
	}
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return "", exitf(ExitMountPoint, "mountpoint %s is still a dead FUSE mount (\"transport endpoint is not connected\") "+
			"after unmounting %d dead pbsfs mounts from it; unmount it with: fusermount3 -u %s", abs, maxDeadMounts, abs)
	case errors.Is(err, fs.ErrNotExist):
		return "", exitf(ExitMountPoint, "mountpoint %s does not exist (create it with: mkdir -p %s)", abs, abs)
	case err != nil:
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", abs, err)
	case !st.IsDir():
		return "", exitf(ExitMountPoint, "mountpoint %s is not a directory", abs)
	case len(names) > 0:
		return "", exitf(ExitMountPoint, "mountpoint %s is not empty (it holds %q, ...); "+
			"pbsfs does not mount over files, which would hide them", abs, names[0])
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", abs, err)
	}
	return real, nil
}

// probeMountpoint stats path and, for a directory, reads its first name.
// A dead FUSE mount on path shows as ENOTCONN from either: the kernel may
// still answer the stat from the attributes it cached (pbsfs's long TTLs),
// but it has nobody to send the open or the read to.
func probeMountpoint(path string) (os.FileInfo, []string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return st, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return st, nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return st, nil, err
	}
	return st, names, nil
}

// checkOverlap refuses a mountpoint inside the datastore and a datastore
// inside the mountpoint (or the two being the same): the file system would
// then serve requests about itself, which deadlocks the kernel (restic
// #5234). Both paths must be absolute and symlink-resolved.
func checkOverlap(store, mnt string) error {
	switch {
	case store == mnt:
		return exitf(ExitMountPoint, "mountpoint %s is the datastore itself; mount it somewhere else", mnt)
	case within(mnt, store):
		return exitf(ExitMountPoint, "mountpoint %s is inside the datastore %s; a datastore mounted into itself "+
			"deadlocks the kernel, mount it somewhere else", mnt, store)
	case within(store, mnt):
		return exitf(ExitMountPoint, "the datastore %s is inside the mountpoint %s; mounting over it would hide it "+
			"from pbsfs itself, mount it somewhere else", store, mnt)
	}
	return nil
}

// within reports whether path is strictly below dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// maxDeadMounts bounds how many dead pbsfs mounts stacked on one
// mountpoint checkMountpoint removes.
const maxDeadMounts = 8

// clearDeadMount handles a mountpoint whose stat failed with ENOTCONN
// ("transport endpoint is not connected"). The kernel gives that only for a
// FUSE mount whose connection was aborted: its server closed /dev/fuse (it
// died, was killed, or exited without unmounting) or someone aborted it
// through /sys/fs/fuse/connections. Such a connection can never be served
// again — FUSE has no way to re-attach a server — while a mount whose
// server is alive, however slow or hung, never answers ENOTCONN (its
// requests wait instead). So the ENOTCONN itself is the proof that no
// process serves the mount; the connection's /sys/fs/fuse/connections/N/
// waiting counter is not (it is 0 for an idle live server too, and above 0
// for a hung one).
//
// If the mount at path is pbsfs's own (type fuse.pbsfs in
// /proc/self/mountinfo) it is unmounted lazily — a process still sitting
// in it (a shell cd'ed there) must not make this fail — and stderr is told.
// Anything else (another file system's dead mount, a dead mount above
// path) is left alone, refused with the command that unmounts it.
func clearDeadMount(abs string, stderr io.Writer) error {
	dead := func(format string, args ...any) error {
		return exitf(ExitMountPoint, "mountpoint %s is a dead mount (\"transport endpoint is not connected\"): "+format, append([]any{abs}, args...)...)
	}
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return dead("%v; unmount it with: fusermount3 -u %s", err, abs)
	}
	entries, err := parseMountinfo(f)
	f.Close()
	if err != nil {
		return dead("%v; unmount it with: fusermount3 -u %s", err, abs)
	}
	path := abs
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		path = filepath.Join(dir, filepath.Base(abs)) // mountinfo has resolved paths
	}
	e, ok := topMount(entries, path)
	if !ok {
		if enc, ok := enclosingMount(entries, path); ok && enc.mountPoint != "/" {
			return dead("it lies inside the dead %s mount at %s; unmount that with: %s",
				enc.fsType, enc.mountPoint, unmountCommand(enc.fsType, enc.mountPoint))
		}
		return dead("unmount it with: fusermount3 -u %s", abs)
	}
	if e.fsType != pbsfsFSType {
		return dead("it is a %s mount (source %q), not pbsfs's, so pbsfs leaves it alone; unmount it with: %s",
			e.fsType, e.source, unmountCommand(e.fsType, path))
	}
	if err := fusermount("-u", "-z", path); err != nil {
		return dead("a pbsfs mount whose pbsfs is gone, and unmounting it failed: %v; unmount it with: fusermount3 -u %s", err, path)
	}
	fmt.Fprintf(stderr, "pbsfs: %s was a dead pbsfs mount (the pbsfs serving it is gone: \"transport endpoint is not connected\"); "+
		"unmounted it (fusermount3 -u -z %s)\n", path, path)
	return nil
}
