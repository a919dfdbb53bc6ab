package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultReadAheadKiB is the kernel read-ahead pbsfs asks for on its mount.
//
// The kernel gives every FUSE mount a read-ahead of 128 KiB, the size of
// one FUSE read request, so a sequential reader of a disk image has about
// one request in flight at a time and pbsfs decodes and serves on one core
// at a time. With 1 MiB the kernel asks for the next megabyte while the
// reader copies the current one: 8 requests in flight, and both cores of a
// small machine busy (BenchmarkArchiveSeq: 429 -> 571 MB/s). Small files
// (notes, manifest.json) are unaffected: read-ahead never passes the end of
// a file, and O_DIRECT and random reads do not trigger it.
const DefaultReadAheadKiB = 1024

// setReadAhead sets the kernel read-ahead of the FUSE mount at mnt to kib
// KiB through its backing device's read_ahead_kb in sysfs. FUSE's own
// negotiation (max_readahead at INIT) can only lower the kernel's 128 KiB,
// so the sysfs knob, which root may write, is the only way up. It must run
// while the mount is served: it stats mnt to find the device. Failures (not
// root, no sysfs) are logged and otherwise ignored: the mount works, only
// sequential reads of archives are slower.
func setReadAhead(mnt string, kib int, sysfs string, log *slog.Logger) {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		log.Info("read-ahead left at the kernel's default", "mountpoint", mnt, "err", err)
		return
	}
	path := bdiReadAheadPath(sysfs, st.Dev)
	if err := os.WriteFile(path, []byte(strconv.Itoa(kib)), 0); err != nil {
		log.Info("read-ahead left at the kernel's default", "file", path, "err", err)
		return
	}
	log.Debug("read-ahead set", "file", path, "KiB", kib)
}

// bdiReadAheadPath is the read_ahead_kb file of the backing device
// (bdi) of a file system with device number dev: FUSE mounts have an
// anonymous device, major 0.
func bdiReadAheadPath(sysfs string, dev uint64) string {
	return fmt.Sprintf("%s/class/bdi/%d:%d/read_ahead_kb", strings.TrimSuffix(sysfs, "/"), unix.Major(dev), unix.Minor(dev))
}
