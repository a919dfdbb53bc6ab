package fs

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbsfs/activeops"
	"pbsfs/datastore"
	"pbsfs/index"
)

// TestPBSS3LocalCache: an S3-backed datastore's directory is only PBS's
// cache: every change is refused with EROFS and a message to use PBS;
// what is cached is served; a chunk evicted from the cache (empty file) or
// never fetched (missing, with GC's .using marker) is EIO with a log line,
// never zeros.
func TestPBSS3LocalCache(t *testing.T) {
	ae := newArchiveEnv(t, nil, datastore.ArchiveOptions{})
	e := preparePBSEnv(t, ae.base, "test", "datastore: test\n\tpath "+ae.base+"\n")
	e.setConfig("\tbackend bucket=pbs-offsite,client=wasabi-eu,type=s3\n")
	e.mount(pbsMount{archives: datastore.ArchiveOptions{Enabled: true}})
	snap := "vm/100/" + tFirst

	for _, script := range []string{
		"echo x >> " + snap + "/notes",
		"echo x > vm/100/notes",
		"rmdir " + snap,
	} {
		if out, err := sh(t, e.mnt, script); !hasErr(out, err, "Read-only file system") {
			t.Errorf("%s: %q %v", script, out, err)
		}
	}
	if !strings.Contains(e.logs.String(), "S3-backed datastore") || !strings.Contains(e.logs.String(), "make changes through PBS") {
		t.Error("no log line saying to use PBS")
	}
	if got := mustSh(t, e.mnt, "cat "+snap+"/qemu-server.conf"); got != string(ae.conf) {
		t.Errorf("cached blob: %q", got)
	}
	mustSh(t, e.mnt, "cat "+snap+"/manifest.json "+snap+"/notes >/dev/null")

	raw, err := os.ReadFile(filepath.Join(ae.base, snap, "drive-scsi0.img.fidx"))
	if err != nil {
		t.Fatal(err)
	}
	fx, err := index.ParseFixed(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Before anything of the image is read (pbsfs reads ahead): chunk 0
	// (= chunk 2) stays cached; chunk 1 is evicted (empty file), chunk 3
	// was never fetched (missing, marker left by GC).
	c1 := filepath.Join(ae.base, index.ChunkPath(fx.Digests[1]))
	c3 := filepath.Join(ae.base, index.ChunkPath(fx.Digests[3]))
	if err := os.Truncate(c1, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c3, c3+".using"); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(c3+".using", 0); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []int{1, 3} {
		out, err := sh(t, e.mnt, fmt.Sprintf("dd if=%s/drive-scsi0.img of=/dev/null bs=65536 skip=%d count=1 status=none", snap, skip))
		if !hasErr(out, err, "Input/output error") {
			t.Errorf("chunk %d: %q %v, want EIO", skip, out, err)
		}
	}
	if n := strings.Count(e.logs.String(), "not in the local cache"); n < 2 {
		t.Errorf("%d log lines about chunks not in the local cache, want one per chunk", n)
	}
	if got := mustSh(t, e.mnt, "dd if="+snap+"/drive-scsi0.img bs=65536 skip=2 count=1 status=none | wc -c"); strings.TrimSpace(got) != "65536" {
		t.Errorf("cached chunk 2: %q bytes", got)
	}
}

// loopDevice makes an ext4 file system on a loop device and returns the
// device and the file system's UUID. Root, losetup and mkfs.ext4 are
// needed; in CI their absence is a failure.
func loopDevice(t *testing.T) (dev, uuid string) {
	t.Helper()
	need := func(err error, what string) {
		if err == nil {
			return
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v", what, err)
		}
		t.Skipf("%s: %v", what, err)
	}
	if os.Geteuid() != 0 {
		need(fmt.Errorf("not root"), "loop device")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	out, err := exec.Command("sh", "-c", "truncate -s 32M "+img+" && mkfs.ext4 -q -F "+img).CombinedOutput()
	need(err, "mkfs.ext4: "+string(out))
	b, err := exec.Command("losetup", "-f", "--show", img).Output()
	need(err, "losetup")
	dev = strings.TrimSpace(string(b))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	b, err = exec.Command("blkid", "-s", "UUID", "-o", "value", dev).Output()
	if err != nil || len(b) == 0 {
		t.Fatalf("blkid %s: %v", dev, err)
	}
	return dev, strings.TrimSpace(string(b))
}

// TestPBSRemovable: a removable datastore (backing-device) on a loop
// device, bind-mounted at /mnt/datastore/<name> as PBS does. With pbsfs
// mounted and idle, PBS's unmount (mode unmount, wait for the active
// operations, plain umount) succeeds; while the device is away nothing is
// served and nothing written into the empty directory underneath; after
// PBS mounts it again pbsfs serves it again.
func TestPBSRemovable(t *testing.T) {
	dev, uuid := loopDevice(t)
	byUUID := t.TempDir()
	if err := os.Symlink(dev, filepath.Join(byUUID, uuid)); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("pbsfs-test-%d", os.Getpid())
	where := filepath.Join("/mnt/datastore", name)
	if err := os.MkdirAll(where, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("umount", where).Run(); os.Remove(where) })
	devRoot := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	// PBS's mount-device: mount the file system, bind its datastore
	// directory to /mnt/datastore/<name>, unmount the temporary mount.
	pbsMountDevice := func() {
		run("mount", dev, devRoot)
		run("mount", "--bind", filepath.Join(devRoot, "pbs", name), where)
		run("umount", devRoot)
	}
	run("mount", dev, devRoot)
	if err := datastore.Create(filepath.Join(devRoot, "pbs", name), datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fillPBSStore(t, filepath.Join(devRoot, "pbs", name))
	run("umount", devRoot)
	pbsMountDevice()

	e := preparePBSEnv(t, where, name, "datastore: "+name+"\n\tbacking-device "+uuid+"\n\tpath pbs/"+name+"\n")
	e.setConfig()
	e.mount(pbsMount{byUUID: byUUID})
	notes := "vm/100/" + tFirst + "/notes"
	if got := mustSh(t, e.mnt, "cat "+notes); got != firstNotes {
		t.Fatalf("notes: %q", got)
	}

	// PBS's unmount task: mode unmount, wait (polling once a second, as
	// PBS does) until the active operations are 0, then a plain umount
	// — no retry, no lazy unmount — and clear the mode.
	e.setConfig("\tmaintenance-mode unmount\n")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := activeops.Sum(filepath.Join(e.aoDir, name), "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Read+c.Write == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("active operations never went to 0: %+v", c)
		}
		time.Sleep(time.Second)
	}
	if out, err := exec.Command("umount", where).CombinedOutput(); err != nil {
		t.Fatalf("PBS's umount failed with pbsfs mounted: %v\n%s\nheld: %v", err, out, e.heldDescriptors())
	}
	e.setConfig()
	absent := func(what string) {
		t.Helper()
		e.eventually(what+": reads refused", "cat "+notes, func(out string, err error) bool {
			return hasErr(out, err, "Input/output error")
		})
		if out, err := sh(t, e.mnt, "echo x >> "+notes); err == nil {
			t.Errorf("%s: notes saved: %q", what, out)
		}
		if out, err := sh(t, e.mnt, "rmdir vm/100/"+tSecond); err == nil {
			t.Errorf("%s: rmdir succeeded: %q", what, out)
		}
		if ents, _ := os.ReadDir(where); len(ents) > 0 {
			t.Errorf("%s: something was written into the empty directory under the mount point: %v", what, ents)
		}
	}
	absent("after PBS's unmount")

	pbsMountDevice()
	e.eventually("mounted again: served", "cat "+notes, func(out string, err error) bool { return err == nil && out == firstNotes })

	// Idle, a plain umount (an administrator's) succeeds too.
	e.waitIdle()
	if out, err := exec.Command("umount", where).CombinedOutput(); err != nil {
		t.Fatalf("umount with pbsfs mounted and idle: %v\n%s", err, out)
	}
	absent("after a plain umount")
	pbsMountDevice()
	e.eventually("mounted again: served", "cat "+notes, func(out string, err error) bool { return err == nil && out == firstNotes })
}

// waitIdle waits until pbsfs holds nothing on the datastore and has no
// entry in the active-operations file.
func (e *pbsEnv) waitIdle() {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, reg := e.ownEntry()
		held := e.heldDescriptors()
		if !reg && len(held) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("still registered (%v) or holding %v", reg, held)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPBSConfigLock: a change is checked and registered under PBS's
// config lock, /etc/proxmox-backup/.datastore.lck: while another process
// (flock(1), as PBS holds it) has it, the save waits.
func TestPBSConfigLock(t *testing.T) {
	e := newPBSEnv(t)
	lockPath := filepath.Join(e.cfgDir, ".datastore.lck")
	holder := exec.Command("flock", lockPath, "sh", "-c", "echo locked; sleep 1")
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("holder: %q %v", buf, err)
	}
	released := make(chan time.Time, 1)
	go func() { holder.Wait(); released <- time.Now() }()
	mustSh(t, e.mnt, "echo new > vm/100/"+tFirst+"/notes")
	saved := time.Now()
	if r := <-released; saved.Before(r) {
		t.Fatalf("the save finished at %v, before the config lock was released at %v", saved, r)
	}
	if got := mustSh(t, e.mnt, "cat vm/100/"+tFirst+"/notes"); got != "new\n" {
		t.Fatalf("notes: %q", got)
	}
}

// TestPBSChangedWhileIdle: what PBS changes while pbsfs is idle (and so
// not sweeping) shows once pbsfs is used again.
func TestPBSChangedWhileIdle(t *testing.T) {
	e := newPBSEnv(t)
	if got := mustSh(t, e.mnt, "ls vm/100"); !strings.Contains(got, tSecond) {
		t.Fatalf("ls: %q", got)
	}
	e.waitIdle()
	if err := os.RemoveAll(filepath.Join(e.base, "vm/100", tSecond)); err != nil {
		t.Fatal(err)
	}
	took := e.eventually("forgotten snapshot gone", "ls vm/100", func(out string, err error) bool {
		return err == nil && !strings.Contains(out, tSecond)
	})
	t.Logf("a snapshot removed while idle disappeared %v after the first use", took)
}

// TestPBSModeWithoutRevalidator: with --recheck 0 (no sweeps) PBS's
// datastore.cfg is still followed while pbsfs is busy (here: a linger of
// an hour, so the store never goes idle and re-checks on its own), so an
// offline mode stops readers and lets the datastore go.
func TestPBSModeWithoutRevalidator(t *testing.T) {
	base := filepath.Join(t.TempDir(), "store")
	if err := datastore.Create(base, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fillPBSStore(t, base)
	e := preparePBSEnv(t, base, "test", "datastore: test\n\tpath "+base+"\n")
	e.recheck = -1
	e.setConfig()
	e.mount(pbsMount{linger: time.Hour}) // never idle: only following datastore.cfg can stop it
	mustSh(t, e.mnt, "cat vm/100/"+tFirst+"/notes >/dev/null")
	e.setConfig("\tmaintenance-mode offline\n")
	took := e.eventually("offline: reads refused", "cat vm/100/"+tFirst+"/notes", func(out string, err error) bool {
		return hasErr(out, err, "Input/output error")
	})
	t.Logf("refused after %v (DefaultRecheck %v)", took, DefaultRecheck)
	if held := e.heldDescriptors(); len(held) > 0 {
		t.Errorf("descriptors held: %v", held)
	}
}
