package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pbsfs/demo"
)

// The mount(8) tests mount through the real mount(8) and /sbin/mount.fuse3,
// as an fstab line or "mount -t fuse.pbsfs" does. mount(8) runs its
// helpers without the caller's PATH, so mount.fuse3's shell finds "pbsfs"
// only in the default PATH: each script runs in a private mount namespace
// (unshare -m) in which the built binary's directory is bind-mounted over
// /usr/local/sbin. The FUSE mounts made there are invisible outside, and
// the namespace (and with it any mount a failed test left) ends with its
// last process.

// requireMount8 is requireFUSE plus mount.fuse3 and unshare.
func requireMount8(t *testing.T) {
	t.Helper()
	requireFUSE(t)
	for _, p := range []string{"/sbin/mount.fuse3", "/usr/bin/unshare"} {
		if _, err := os.Stat(p); err != nil {
			msg := p + " missing (packages fuse3, util-linux)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("mount(8) of a FUSE type needs root")
	}
}

// inMountNS runs a sh script in a private mount namespace where the built
// pbsfs is on mount.fuse3's PATH.
func inMountNS(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	return inPrivateNS(t, dir, "mount --bind "+shq(filepath.Dir(pbsfsBin))+" /usr/local/sbin || exit 99\n"+script)
}

// inPrivateNS runs a sh script in a private mount namespace. Every mount
// under dir is lazily unmounted when the script ends, so that a failing
// script leaves no server behind.
func inPrivateNS(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	full := "set -u\ntrap 'for m in $(grep -o \" " + dir + "/[^ ]*\" /proc/self/mounts); do umount -l $m; done' EXIT\n" + script
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", full)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// waitLog waits until the file holds want (the background server's log).
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(scaled(20 * time.Second))
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s", path, want, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMount8 mounts with "mount -t fuse.pbsfs ... -o OPTIONS": mount
// returns once the mount serves (the very next command sees the tree, not
// the empty directory), the options take effect (ro, the source and type
// mount(8) shows), mount(8)'s and systemd's options are accepted, and
// umount ends the background server cleanly.
func TestMount8(t *testing.T) {
	requireMount8(t)
	store := newStore(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	log := filepath.Join(dir, "pbsfs.log")
	os.Mkdir(mnt, 0o755)
	opts := "ro,allow_other,lock-scheme=run,lock_dir=" + filepath.Join(dir, "locks") + ",store=demo,verbose,log-file=" + log +
		",defaults,nofail,_netdev,noatime,nodev,nosuid,x-systemd.automount,x-systemd.mount-timeout=30,comment=x"
	out, err := inMountNS(t, dir, `
mount -t fuse.pbsfs `+shq(store)+` `+shq(mnt)+` -o `+shq(opts)+` || { echo "mount failed: $?"; exit 1; }
ls `+shq(mnt)+` | tr '\n' ' '; echo
cat `+shq(filepath.Join(mnt, demo.SampleVM, "manifest.json"))+` | grep -c '"backup-id"'
findmnt -n -o FSTYPE,SOURCE,OPTIONS `+shq(mnt)+`
echo changed >`+shq(filepath.Join(mnt, demo.SampleVM, "notes"))+` && echo "WROTE"
umount `+shq(mnt)+` && echo "UNMOUNTED"
`)
	t.Logf("script output:\n%s", out)
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	for _, want := range []string{"ct host ns vm \n", "\n1\n", "fuse.pbsfs " + store + " ro,", "Read-only file system", "UNMOUNTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "WROTE") {
		t.Error("wrote through an ro mount")
	}
	// The server exits by itself after umount, and logged to log-file.
	waitLog(t, log, `msg=unmounted`)
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), "msg=mounted") {
		t.Errorf("log-file lacks the mounted line:\n%s", data)
	}
}

// TestFstab mounts an fstab line (in a scratch fstab: mount -T FILE) with
// an encryption key, writes notes through it, checks that "mount -a" sees
// the line as mounted, and unmounts it.
func TestFstab(t *testing.T) {
	requireMount8(t)
	store := newStore(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	key := filepath.Join(dir, "key.json")
	if err := demo.WriteKeyFile(key); err != nil {
		t.Fatal(err)
	}
	fstab := filepath.Join(dir, "fstab")
	line := store + " " + mnt + " fuse.pbsfs allow_other,keyfile=" + key + ",lock-scheme=run,lock-dir=" +
		filepath.Join(dir, "locks") + ",store=demo,log-file=" + filepath.Join(dir, "log") + ",nofail,_netdev 0 0\n"
	if err := os.WriteFile(fstab, []byte("# scratch fstab\n"+line), 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(mnt, demo.SampleVM, "notes")
	out, err := inMountNS(t, dir, `
mount -T `+shq(fstab)+` `+shq(mnt)+` || { echo "mount failed: $?"; exit 1; }
mount -T `+shq(fstab)+` -a || echo "mount -a failed: $?"
echo "MOUNTS $(grep -c ' `+mnt+` ' /proc/self/mounts)"
grep -q scsi0 `+shq(filepath.Join(mnt, demo.SampleEncrypted, "qemu-server.conf"))+` && echo DECRYPTED
echo "written by fstab" >`+shq(notes)+` || echo "write failed"
umount `+shq(mnt)+` && echo "UNMOUNTED"
`)
	t.Logf("script output:\n%s", out)
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	for _, want := range []string{"MOUNTS 1\n", "DECRYPTED\n", "UNMOUNTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, bad := range []string{"failed"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q", bad)
		}
	}
	if mm, _ := loadManifest(t, store, demo.SampleVM); mm.Notes() != "written by fstab\n" {
		t.Errorf("notes in the store: %q", mm.Notes())
	}
}

// TestMount8Refused: bad options and a missing store make mount(8) fail
// with pbsfs's message and exit status, and nothing stays mounted.
func TestMount8Refused(t *testing.T) {
	requireMount8(t)
	store := newStore(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	base := "lock-scheme=run,lock-dir=" + filepath.Join(dir, "locks") + ",log-file=" + filepath.Join(dir, "log")
	for _, c := range []struct {
		store, opts string
		code        string
		msg         string
	}{
		{store, base + ",bogus", "2", `unknown mount option "bogus"`},
		{store, base + ",recheck", "2", "mount option recheck needs a value: recheck=VALUE"},
		{store, base + ",cache-size=0", "2", "--cache-size: 0 is not a positive number"},
		{store, base + ",remount", "2", "cannot be remounted"},
		{store, base + ",keyfile=" + filepath.Join(dir, "nokey"), "14", "no such file"},
		{filepath.Join(dir, "nostore"), base, "10", "datastore " + filepath.Join(dir, "nostore") + " does not exist"},
	} {
		out, err := inMountNS(t, dir, `
mount -t fuse.pbsfs `+shq(c.store)+` `+shq(mnt)+` -o `+shq(c.opts)+`
echo "EXIT $?"
echo "MOUNTS $(grep -c ' `+mnt+` ' /proc/self/mounts)"
`)
		if err != nil || !strings.Contains(out, "EXIT "+c.code+"\n") || !strings.Contains(out, c.msg) || !strings.Contains(out, "MOUNTS 0\n") {
			t.Errorf("-o %s on %s: %v; want exit %s and %q, nothing mounted; got:\n%s", c.opts, c.store, err, c.code, c.msg, out)
		}
	}
}

// TestMount8Syslog: without log-file the background server logs to syslog.
// The script's namespace gets a tmpfs on /run with the test's datagram
// socket bound to /run/syslog (log/syslog's second choice after /dev/log,
// which this machine may have or not; /dev stays untouched).
func TestMount8Syslog(t *testing.T) {
	requireMount8(t)
	store := newStore(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	sock := filepath.Join(dir, "syslog")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out, err := inMountNS(t, dir, `
[ -e /dev/log ] && mount --bind /dev/null /dev/log
mount -t tmpfs tmpfs /run && touch /run/syslog && mount --bind `+shq(sock)+` /run/syslog || exit 98
mount -t fuse.pbsfs `+shq(store)+` `+shq(mnt)+` -o verbose,lock-scheme=run,lock-dir=`+shq(filepath.Join(dir, "locks"))+` || exit 1
ls `+shq(mnt)+` >/dev/null && umount `+shq(mnt)+` && echo UNMOUNTED
`)
	if err != nil || !strings.Contains(out, "UNMOUNTED") || strings.Contains(out, "syslog") {
		t.Fatalf("script: %v\n%s", err, out)
	}
	var got []string
	buf := make([]byte, 4096)
	for !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "msg=unmounted") }) {
		conn.SetReadDeadline(time.Now().Add(scaled(20 * time.Second)))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("syslog got %q, then: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if !slices.ContainsFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "<30>") && strings.Contains(s, " pbsfs[") && strings.Contains(s, "]: msg=mounted datastore="+store)
	}) {
		t.Errorf("no daemon.info line for the mount in %q", got)
	}
}
