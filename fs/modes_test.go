package fs

import (
	"os"
	"path/filepath"
	"testing"

	"pbsfs/datastore"
)

// TestModesFollowTheStore: permission bits shown are the datastore's own —
// of the directory, of the file the content is stored in (the group
// directory for group notes not written yet) — without execute bits on
// files and without write bits on read-only files and in read-only mounts,
// so that with --allow-other the kernel's checks give other users exactly
// the access the datastore's modes give them.
func TestModesFollowTheStore(t *testing.T) {
	for _, ro := range []bool{false, true} {
		var opts []envOpt
		if ro {
			opts = append(opts, readOnly)
		}
		e := newEnv(t, opts...)
		sn := datastore.Snapshot{Group: vm100, Time: tFirst}
		chmod := func(rel string, mode os.FileMode) {
			t.Helper()
			if err := os.Chmod(filepath.Join(e.base, rel), mode); err != nil {
				t.Fatal(err)
			}
		}
		chmod(sn.Dir(), 0o700)
		chmod(filepath.Join(sn.Dir(), datastore.ManifestName), 0o640)
		chmod("vm/100/notes", 0o600)
		chmod("vm/100/owner", 0o751)
		chmod("ct/200", 0o750)
		chmod("", 0o711)
		w := os.FileMode(0o222)
		if ro {
			w = 0
		}
		for _, c := range []struct {
			rel  string
			want os.FileMode
		}{
			{"", os.ModeDir | 0o711&^(0o222&^w)},
			{"vm/100/" + tFirst, os.ModeDir | 0o700&^(0o222&^w)},
			{"vm/100/" + tFirst + "/notes", 0o640 &^ (0o222 &^ w)},
			{"vm/100/" + tFirst + "/manifest.json", 0o440},
			{"vm/100/notes", 0o600 &^ (0o222 &^ w)},
			{"vm/100/owner", 0o440},
			{"ct/200", os.ModeDir | 0o750&^(0o222&^w)},
			{"ct/200/notes", 0o640 &^ (0o222 &^ w)}, // no notes file: the group directory's bits, no x
		} {
			a := e.attr(e.fs.root)
			if c.rel != "" {
				a = e.attr(e.node(c.rel))
			}
			if a.Mode != c.want {
				t.Errorf("read-only %v: %q mode %v, want %v", ro, c.rel, a.Mode, c.want)
			}
		}
	}
}
