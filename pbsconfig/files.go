package pbsconfig

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/lock"
)

// DefaultDir is PBS's configuration directory.
const DefaultDir = "/etc/proxmox-backup"

// File names inside the configuration directory.
const (
	DatastoreFile = "datastore.cfg"
	LockName      = ".datastore.lck"
)

// LockTimeout is how long PBS waits for the config lock.
const LockTimeout = 10 * time.Second

// maxFile bounds what Load reads; datastore.cfg holds a few lines per store.
const maxFile = 4 << 20

// Stamp identifies one version of datastore.cfg. PBS replaces the file by
// rename, so a new version has a new inode; size and times catch an edit in
// place. The zero Stamp is a missing file.
type Stamp struct {
	Ino, Size    int64
	Mtime, Ctime int64 // ns
}

// StatFile returns the stamp of the datastore.cfg in dir (zero if missing).
func StatFile(dir string) (Stamp, error) {
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(dir, DatastoreFile), &st)
	if errors.Is(err, unix.ENOENT) {
		return Stamp{}, nil
	}
	if err != nil {
		return Stamp{}, fmt.Errorf("stat %s: %w", filepath.Join(dir, DatastoreFile), err)
	}
	return Stamp{Ino: int64(st.Ino), Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, nil
}

// Load reads and parses the datastore.cfg in dir. A missing file is an
// empty configuration ("no datastores"), as for PBS; exists says which.
func Load(dir string) (c *Config, st Stamp, exists bool, err error) {
	p := filepath.Join(dir, DatastoreFile)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, Stamp{}, false, nil
	}
	if err != nil {
		return nil, Stamp{}, false, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	var ust unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &ust); err != nil {
		return nil, Stamp{}, true, fmt.Errorf("read %s: %w", p, err)
	}
	st = Stamp{Ino: int64(ust.Ino), Size: ust.Size, Mtime: ust.Mtim.Nano(), Ctime: ust.Ctim.Nano()}
	if ust.Size > maxFile {
		return nil, st, true, fmt.Errorf("read %s: %d bytes is not a datastore.cfg", p, ust.Size)
	}
	data := make([]byte, 0, ust.Size)
	buf := make([]byte, 64<<10)
	for {
		n, rerr := f.Read(buf)
		data = append(data, buf[:n]...)
		if rerr != nil || len(data) > maxFile {
			break
		}
	}
	c, err = Parse(data)
	if err != nil {
		return nil, st, true, fmt.Errorf("parsing %q failed: %w", p, err)
	}
	return c, st, true, nil
}

// LockConfig takes PBS's config lock, dir/.datastore.lck, exclusively,
// waiting up to timeout (0 = LockTimeout), as PBS's lookup_datastore does
// around its maintenance check and registration. A missing lock file is
// created 0660 with owner uid:gid (-1 keeps the creator's).
func LockConfig(ctx context.Context, dir string, timeout time.Duration, uid, gid int) (*lock.Lock, error) {
	if timeout <= 0 {
		timeout = LockTimeout
	}
	return lock.LockFile(ctx, filepath.Join(dir, LockName), timeout, uid, gid)
}

// FindDir returns the sections whose directory (Dir) is dir, compared by
// device and inode (so symlinks and bind mounts of the same directory
// match), or by the cleaned path where a section's directory cannot be
// stat'ed (a removable datastore that is not mounted).
func (c *Config) FindDir(dir string) []*Datastore {
	var want unix.Stat_t
	haveWant := unix.Stat(dir, &want) == nil
	var out []*Datastore
	for _, d := range c.Datastores {
		if !d.Removable() && !filepath.IsAbs(d.Path) {
			continue
		}
		var st unix.Stat_t
		if haveWant && unix.Stat(d.Dir(), &st) == nil {
			if st.Dev == want.Dev && st.Ino == want.Ino {
				out = append(out, d)
			}
			continue
		}
		if d.Dir() == filepath.Clean(dir) {
			out = append(out, d)
		}
	}
	return out
}

// SameDir reports whether the two paths name the same directory (device
// and inode).
func SameDir(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, fmt.Errorf("stat %s: %w", a, err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, fmt.Errorf("stat %s: %w", b, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
