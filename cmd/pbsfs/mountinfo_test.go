package main

import (
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const info = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:45 / /mnt/with\040space rw,nosuid,nodev,relatime shared:20 - fuse.pbsfs pbsfs rw,user_id=0,group_id=0
37 22 0:46 / /mnt/pbs rw,nosuid,nodev,relatime - fuse.sshfs user@host:/ rw,user_id=0,group_id=0
38 22 0:47 / /mnt/pbs rw,nosuid,nodev,relatime - fuse.pbsfs pbsfs rw,user_id=0,group_id=0
39 22 0:48 / /mnt/plain rw - fuse /dev/fuse rw
broken line
40 22 0:49 / /mnt/back\134slash rw master:3 shared:4 - tmpfs tmpfs rw
`
	entries, err := parseMountinfo(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 {
		t.Fatalf("%d entries, want 6: %+v", len(entries), entries)
	}
	for _, c := range []struct {
		path, fsType, source string
		ok                   bool
	}{
		{"/mnt/with space", "fuse.pbsfs", "pbsfs", true},
		{"/mnt/pbs", "fuse.pbsfs", "pbsfs", true}, // the last mount on top
		{`/mnt/back\slash`, "tmpfs", "tmpfs", true},
		{"/mnt/none", "", "", false},
	} {
		e, ok := topMount(entries, c.path)
		if ok != c.ok || e.fsType != c.fsType || e.source != c.source {
			t.Errorf("topMount(%q) = %+v, %v; want %s %s %v", c.path, e, ok, c.fsType, c.source, c.ok)
		}
	}
	if e, ok := enclosingMount(entries, "/mnt/pbs/vm/100"); !ok || e.mountPoint != "/mnt/pbs" {
		t.Errorf("enclosingMount below /mnt/pbs = %+v, %v", e, ok)
	}
	if e, ok := enclosingMount(entries, "/srv/x"); !ok || e.mountPoint != "/" {
		t.Errorf("enclosingMount of /srv/x = %+v, %v; want the root", e, ok)
	}
	for fsType, want := range map[string]string{
		"fuse.pbsfs": "fusermount3 -u /m", "fuse": "fusermount3 -u /m", "fuseblk": "fusermount3 -u /m", "nfs": "umount /m",
	} {
		if got := unmountCommand(fsType, "/m"); got != want {
			t.Errorf("unmountCommand(%s) = %q, want %q", fsType, got, want)
		}
	}
}
