package main

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machineFacts describe where the figures were taken.
type machineFacts struct {
	cores     int
	cpu       string
	memory    string
	kernel    string
	fuse3     string
	bindfs    string
	goVersion string
	tmpFS     string // file system type of the stores' directory
	pbsfs     string // what the pbsfs binary was built from
	date      time.Time
	loadStart string
	loadEnd   string
	duration  time.Duration
}

func collectFacts() machineFacts {
	f := machineFacts{
		cores:     runtime.NumCPU(),
		goVersion: runtime.Version(),
		date:      time.Now(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.kernel = unix.ByteSliceToString(u.Release[:])
	}
	f.cpu = procField("/proc/cpuinfo", "model name")
	f.memory = procField("/proc/meminfo", "MemTotal")
	f.fuse3 = firstLine(exec.Command("fusermount3", "--version"))
	f.bindfs = firstLine(exec.Command("bindfs", "--version"))
	var st unix.Statfs_t
	if unix.Statfs(os.TempDir(), &st) == nil {
		f.tmpFS = fsName(st.Type)
	}
	return f
}

// procField returns the value of the first "key: value" line in a /proc file.
func procField(path, key string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func firstLine(cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	return string(line)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fsName(magic int64) string {
	switch magic {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4 (ext2/3/4 magic)"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return "unknown"
}
