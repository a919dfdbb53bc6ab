package main

import (
	"errors"
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
// not a dead FUSE mount. It returns the absolute, symlink-resolved path.
func checkMountpoint(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return "", exitf(ExitMountPoint, "mountpoint %s is a dead FUSE mount (\"transport endpoint is not connected\"); "+
			"unmount it first: fusermount3 -u %s", abs, abs)
	case errors.Is(err, fs.ErrNotExist):
		return "", exitf(ExitMountPoint, "mountpoint %s does not exist (create it with: mkdir -p %s)", abs, abs)
	case err != nil:
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", abs, err)
	case !st.IsDir():
		return "", exitf(ExitMountPoint, "mountpoint %s is not a directory", abs)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", abs, err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", abs, err)
	}
	if len(names) > 0 {
		return "", exitf(ExitMountPoint, "mountpoint %s is not empty (it holds %q, ...); "+
			"pbsfs does not mount over files, which would hide them", abs, names[0])
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", exitf(ExitMountPoint, "mountpoint %s: %w", abs, err)
	}
	return real, nil
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
