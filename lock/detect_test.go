package lock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var debVersionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.0-0", 0},
	{"0:1.0", "1.0", 0},
	{"1.00", "1.0", 0},
	{"1.0", "1.0-1", -1},
	{"1.0-1", "1.0-2", -1},
	{"1.0-9", "1.0-10", -1},
	{"1.2.9", "1.2.10", -1},
	{"1:0.1", "2.0", 1},
	{"2:1", "10:0", -1},
	{"1.0~rc1", "1.0", -1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~", "1.0", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~~", "1.0~~a", -1},
	{"1.0~~a", "1.0~", -1},
	{"1.0", "1.0a", -1},
	{"1.0+", "1.0.", -1},
	{"1.0+b1", "1.0", 1},
	{"1.0+", "1.0.", -1},
	{"1.0-1ubuntu1", "1.0-1", 1},
	{"1.99999999999999999999999", "1.100000000000000000000000", -1},
	{"3.3.5-1", "3.3.5~", 1},
	{"3.3.4-1", "3.3.5~", -1},
	{"3.3.5~rc1-1", "3.3.5~", 1},
	{"4.2.3-1", "3.3.5~", 1},
	{"2.2.0-1", "2.2~", 1},
	{"2.1.10-1", "2.2~", -1},
	{"1.0.5-1", "1.0.6~", -1},
	{"0.9.1-1", "0.9.1~", 1},
	{"0.9.0-2", "0.9.1~", -1},
	{"a-b-c", "a-b-d", -1},
}

func TestCompareDebianVersions(t *testing.T) {
	for _, c := range debVersionCases {
		if got := CompareDebianVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareDebianVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

// TestCompareDebianVersionsDpkg cross-checks the table with dpkg itself where
// it is available.
func TestCompareDebianVersionsDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed")
	}
	for _, c := range debVersionCases {
		op := map[int]string{-1: "lt", 0: "eq", 1: "gt"}[c.want]
		if err := exec.Command(dpkg, "--compare-versions", c.a, op, c.b).Run(); err != nil {
			t.Errorf("dpkg disagrees: %q %s %q: %v", c.a, op, c.b, err)
		}
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "old-locking")
	noFlag := filepath.Join(dir, "absent")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fileAsDir := filepath.Join(flag, "x") // stat fails with ENOTDIR
	ver := func(v string) func() (string, bool, error) {
		return func() (string, bool, error) { return v, true, nil }
	}
	for _, c := range []struct {
		name    string
		iv      func() (string, bool, error)
		flag    string
		want    Scheme
		wantErr error
		reason  string
	}{
		{"not installed", func() (string, bool, error) { return "", false, nil }, flag, Run, nil, "no PBS installed"},
		{"4.2.3", ver("4.2.3-1"), noFlag, Run, nil, "4.2.3-1"},
		{"3.3.5 rebooted", ver("3.3.5-1"), noFlag, Run, nil, ""},
		{"3.3.5 old-locking", ver("3.3.5-1"), flag, Dirs, nil, "old-locking"},
		{"3.3.4 no flag", ver("3.3.4-1"), noFlag, Dirs, nil, ""},
		{"3.3.4 flag", ver("3.3.4-1"), flag, Dirs, nil, ""},
		{"3.2.4", ver("3.2.4-1"), noFlag, Dirs, nil, ""},
		{"2.2.0", ver("2.2.0-2"), noFlag, Dirs, nil, ""},
		{"2.1.x", ver("2.1.5-1"), noFlag, "", ErrUnsupported, ""},
		{"1.0.6", ver("1.0.6-1"), noFlag, "", ErrUnsupported, ""},
		{"1.0.5", ver("1.0.5-1"), noFlag, Legacy, nil, ""},
		{"0.9.1", ver("0.9.1-1"), flag, Legacy, nil, ""},
		{"0.9.0", ver("0.9.0-2"), noFlag, "", ErrUnsupported, ""},
		{"query error", func() (string, bool, error) { return "", false, errors.New("boom") }, noFlag, "", nil, ""},
		{"flag unreadable", ver("3.3.6-1"), fileAsDir, "", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, reason, err := Detect(DetectOptions{InstalledVersion: c.iv, OldLockingFlag: c.flag})
			if c.want == "" {
				if err == nil {
					t.Fatalf("want an error, got %s (%s)", s, reason)
				}
				if c.wantErr != nil && !errors.Is(err, c.wantErr) {
					t.Fatalf("error %v does not wrap %v", err, c.wantErr)
				}
				return
			}
			if err != nil || s != c.want {
				t.Fatalf("got %q, %v; want %q", s, err, c.want)
			}
			if !strings.Contains(reason, c.reason) {
				t.Errorf("reason %q does not mention %q", reason, c.reason)
			}
		})
	}
}

func TestParseDpkgStatus(t *testing.T) {
	for _, c := range []struct {
		out       string
		v         string
		installed bool
		err       bool
	}{
		{"install ok installed\t3.3.5-1", "3.3.5-1", true, false},
		{"deinstall ok config-files\t3.2.4-1", "", false, false},
		{"unknown ok not-installed\t", "", false, false},
		{"install ok unpacked\t3.3.5-1", "", false, true},
		{"garbage", "", false, true},
	} {
		v, inst, err := parseDpkgStatus(c.out)
		if v != c.v || inst != c.installed || (err != nil) != c.err {
			t.Errorf("parseDpkgStatus(%q) = %q, %v, %v", c.out, v, inst, err)
		}
	}
}

// TestInstalledPBSVersion runs the real query; on a host without PBS it must
// report "not installed" without an error.
func TestInstalledPBSVersion(t *testing.T) {
	v, installed, err := InstalledPBSVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("proxmox-backup-server: version %q installed %v", v, installed)
	if installed && v == "" {
		t.Error("installed without a version")
	}
}

func TestBackupOwner(t *testing.T) {
	uid, gid := BackupOwner()
	if (uid == -1) != (gid == -1) {
		t.Errorf("BackupOwner() = %d, %d", uid, gid)
	}
	t.Logf("backup owner %d:%d", uid, gid)
}
