package main

import (
	"bufio"
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

// DatastoreConfig is where PBS keeps its datastore definitions.
const DatastoreConfig = "/etc/proxmox-backup/datastore.cfg"

// parseDatastoreCfg reads PBS's datastore.cfg and returns datastore paths
// (cleaned) mapped to their names. The format is section-config:
//
//	datastore: store1
//		comment Offsite copies
//		path /mnt/datastore/store1
func parseDatastoreCfg(r io.Reader) (map[string]string, error) {
	paths := map[string]string{}
	var name string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			// A section header: "<type>: <name>".
			typ, id, ok := strings.Cut(trimmed, ":")
			name = ""
			if ok && strings.TrimSpace(typ) == "datastore" {
				name = strings.TrimSpace(id)
			}
			continue
		}
		key, value, _ := strings.Cut(trimmed, " ")
		if name != "" && key == "path" {
			if p := strings.TrimSpace(value); p != "" {
				paths[filepath.Clean(p)] = name
			}
		}
	}
	return paths, sc.Err()
}

// storeName finds the PBS name of the datastore at path (absolute and
// symlink-resolved): its section in cfgPath, else the directory's base
// name. source says which, for the log.
func storeName(cfgPath, path string) (name, source string) {
	f, err := os.Open(cfgPath)
	if err == nil {
		defer f.Close()
		paths, perr := parseDatastoreCfg(f)
		if perr == nil {
			for p, n := range paths {
				if p == path {
					return n, "from " + cfgPath
				}
				if real, err := filepath.EvalSymlinks(p); err == nil && real == path {
					return n, "from " + cfgPath
				}
			}
			return filepath.Base(path), fmt.Sprintf("the directory name: %s lists no datastore with path %s", cfgPath, path)
		}
		err = perr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return filepath.Base(path), fmt.Sprintf("the directory name: %s does not exist", cfgPath)
	}
	return filepath.Base(path), fmt.Sprintf("the directory name: cannot read %s: %v", cfgPath, err)
}
