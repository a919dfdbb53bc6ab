package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// mountEntry is one line of /proc/self/mountinfo (proc(5)): the fields
// pbsfs needs.
type mountEntry struct {
	mountPoint string // unescaped
	fsType     string // "fuse.pbsfs" for a pbsfs mount (type fuse, subtype pbsfs)
	source     string // the FUSE fsname, "pbsfs" for ours
}

// mountinfoPath is the mount table of this process's mount namespace.
const mountinfoPath = "/proc/self/mountinfo"

// parseMountinfo reads mountinfo lines:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// (mount ID, parent ID, major:minor, root, mount point, mount options,
// optional fields up to "-", then file system type, source, super options).
// Malformed lines are skipped.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mountEntry{mountPoint: unescapeMountinfo(f[4]), fsType: f[sep+1], source: unescapeMountinfo(f[sep+2])})
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011 tab, \012 newline, \134 backslash) in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// topMount returns the mount visible at path (the last one mounted there;
// mountinfo lists mounts in mount order), if any.
func topMount(entries []mountEntry, path string) (mountEntry, bool) {
	var top mountEntry
	found := false
	for _, e := range entries {
		if e.mountPoint == path {
			top, found = e, true
		}
	}
	return top, found
}

// readTopMount is topMount on this process's mount table.
func readTopMount(path string) (mountEntry, bool, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return mountEntry{}, false, err
	}
	defer f.Close()
	entries, err := parseMountinfo(f)
	if err != nil {
		return mountEntry{}, false, fmt.Errorf("%s: %w", mountinfoPath, err)
	}
	e, ok := topMount(entries, path)
	return e, ok, nil
}

// isMountpoint reports whether something is mounted at path (false when
// that cannot be told).
func isMountpoint(path string) bool {
	_, ok, err := readTopMount(path)
	return err == nil && ok
}

// pbsfsFSType is the type a pbsfs mount has in mountinfo: FUSE, subtype
// pbsfs (fs.MountOptions).
const pbsfsFSType = "fuse.pbsfs"

// unmountCommand is the command that unmounts a mount of type fsType.
func unmountCommand(fsType, mnt string) string {
	if fsType == "fuse" || strings.HasPrefix(fsType, "fuse.") || strings.HasPrefix(fsType, "fuseblk") {
		return "fusermount3 -u " + mnt
	}
	return "umount " + mnt
}

// enclosingMount returns the mount that holds path: the one mounted at
// path or at its nearest parent directory.
func enclosingMount(entries []mountEntry, path string) (mountEntry, bool) {
	for p := path; ; p = filepath.Dir(p) {
		if e, ok := topMount(entries, p); ok {
			return e, true
		}
		if p == "/" || p == "." {
			return mountEntry{}, false
		}
	}
}
