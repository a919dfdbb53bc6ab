package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDebianPackage builds the package with scripts/build-deb, checks its
// control fields and file list (dpkg-deb), what the files hold, then
// installs it with dpkg -i, mounts a store through mount(8) with the
// installed pbsfs, and removes and purges the package, leaving the
// machine as it was.
func TestDebianPackage(t *testing.T) {
	requireMount8(t)
	for _, tool := range []string{"dpkg", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing", tool)
			}
			t.Skip(tool + " missing")
		}
	}
	if exec.Command("dpkg-query", "-W", "-f=${Status}", "pbsfs").Run() == nil {
		msg := "a pbsfs package is installed on this machine; not touching it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	out, err := exec.Command("../scripts/build-deb", filepath.Join(dir, "dist")).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/build-deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "dist", "pbsfs_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("built %q\n%s", debs, out)
	}
	deb := debs[0]

	// Control fields: the version is the one the binary reports.
	info := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends", "Maintainer", "Description")
	version := field(info, "Version")
	for _, want := range []string{"Package: pbsfs\n", "Architecture: amd64\n", "Depends: fuse3\n", "Description: Proxmox Backup Server datastore"} {
		if !strings.Contains(info, want) {
			t.Errorf("control lacks %q:\n%s", want, info)
		}
	}
	if !regexp.MustCompile(`^0\.3\.0~git\d{14}\.[0-9a-f]{12}$`).MatchString(version) {
		t.Errorf("version %q", version)
	}
	if !strings.Contains(string(out), "pbsfs "+version+" (commit ") {
		t.Errorf("build output lacks the version line for %s:\n%s", version, out)
	}
	list := run(t, "dpkg-deb", "-c", deb)
	files := []string{"./usr/bin/pbsfs", "./usr/share/man/man1/pbsfs.1.gz", "./lib/systemd/system/pbsfs@.service",
		"./usr/share/bash-completion/completions/pbsfs", "./usr/share/doc/pbsfs/README.md", "./usr/share/doc/pbsfs/BENCHMARKS.md"}
	for _, f := range files {
		if !regexp.MustCompile(`(?m) ` + regexp.QuoteMeta(f) + `$`).MatchString(list) {
			t.Errorf("package lacks %s:\n%s", f, list)
		}
	}
	if !regexp.MustCompile(`(?m)^-rwxr-xr-x root/root .* \./usr/bin/pbsfs$`).MatchString(list) {
		t.Errorf("binary not 0755 root:\n%s", list)
	}

	// Install, use, remove.
	t.Cleanup(func() {
		if exec.Command("dpkg-query", "-W", "pbsfs").Run() == nil {
			dpkg(t, "--purge", "pbsfs")
		}
	})
	dpkg(t, "-i", deb)
	if got := run(t, "/usr/bin/pbsfs", "version"); !strings.HasPrefix(got, "pbsfs "+version+" (commit ") {
		t.Errorf("installed pbsfs version: %q, want %s", got, version)
	}
	man := run(t, "sh", "-c", "zcat /usr/share/man/man1/pbsfs.1.gz")
	for _, want := range []string{`.TH PBSFS 1 "" "pbsfs ` + version + `" "User Commands"`, `\fB--keyfile\fP \fIFILE\fP`, "pbsfs@.service"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		unit := filepath.Join(dir, "pbsfs@store1.service")
		os.Symlink("/lib/systemd/system/pbsfs@.service", unit)
		if out, err := exec.Command("systemd-analyze", "verify", "--man=no", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify pbsfs@store1.service: %v\n%s", err, out)
		}
	}
	store := newStore(t)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	script := `
mount -t fuse.pbsfs ` + shq(store) + ` ` + shq(mnt) + ` -o ro,lock-scheme=run,lock-dir=` + shq(filepath.Join(dir, "locks")) + ` || exit 1
ls ` + shq(mnt) + ` | tr '\n' ' '; echo
umount ` + shq(mnt) + ` && echo UNMOUNTED
`
	if out, err := inPrivateNS(t, dir, script); err != nil || !strings.Contains(out, "ct host ns vm \nUNMOUNTED") {
		t.Errorf("mount with the installed pbsfs: %v\n%s", err, out)
	}
	dpkg(t, "-r", "pbsfs")
	for _, f := range files {
		if _, err := os.Stat(f[1:]); err == nil {
			t.Errorf("%s left after dpkg -r", f[1:])
		}
	}
	dpkg(t, "--purge", "pbsfs")
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "pbsfs").CombinedOutput(); err == nil && strings.TrimSpace(string(out)) != "not-installed" {
		t.Errorf("after purge: %s", out)
	}
}

// dpkg runs dpkg, waiting while another dpkg or apt holds the lock.
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := exec.Command("dpkg", args...).CombinedOutput()
		if err == nil {
			return
		}
		if !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(time.Second)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func field(control, name string) string {
	for _, l := range strings.Split(control, "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			return v
		}
	}
	return ""
}
