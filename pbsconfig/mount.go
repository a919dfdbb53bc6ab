package pbsconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounted is PBS's is_datastore_mounted_at (§10.5) for a removable
// datastore: byUUID/<backing-device> is a block device, and mountInfo has
// an entry with mount point Dir() whose source is that block device. ""
// means /proc/self/mountinfo and /dev/disk/by-uuid. It returns nil for a
// datastore that is not removable.
func (d *Datastore) Mounted(mountInfo, byUUID string) error {
	if !d.Removable() {
		return nil
	}
	dir, uuid := d.Dir(), d.BackingDevice
	if mountInfo == "" {
		mountInfo = "/proc/self/mountinfo"
	}
	if byUUID == "" {
		byUUID = "/dev/disk/by-uuid"
	}
	dev := filepath.Join(byUUID, uuid)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return fmt.Errorf("no device %s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return fmt.Errorf("%s is not a block device", dev)
	}
	data, err := os.ReadFile(mountInfo)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMount(f[4]) != dir {
			continue
		}
		i := 6
		for i < len(f) && f[i] != "-" {
			i++
		}
		if i+2 >= len(f) || !strings.HasPrefix(f[i+2], "/") {
			continue
		}
		var sst unix.Stat_t
		if unix.Stat(unescapeMount(f[i+2]), &sst) == nil && sst.Mode&unix.S_IFMT == unix.S_IFBLK && sst.Rdev == st.Rdev {
			return nil
		}
	}
	return fmt.Errorf("%s is not mounted from %s", dir, dev)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a blank).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
