package lock

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// pbsPackage is the Debian package whose version decides the scheme.
const pbsPackage = "proxmox-backup-server"

// Version boundaries (pbs-format.md §6.2, checked against the PBS git history):
//   - 3.3.5: lock files under /run (fix #3935); debian/postinst creates the
//     old-locking flag when upgrading from a version lt 3.3.5~.
//   - 2.2: manifest lock file in a per-snapshot directory with ns/ prefixes
//     (commit f2fe00f1, first released in 2.2.0-2; 2.2.0-1 produced the same
//     path for the root namespace only).
//   - 1.0.6: manifest lock moved to /run/proxmox-backup/locks/<store>/<type>/<id>/
//     (commit 179145dc, 2020-12-02): a fourth variant we do not implement.
//   - 0.9.1: first version with the legacy manifest lock file (commit
//     1a374fcf, 2020-10-16; strictly it first shipped in 0.9.2-1, 0.9.1
//     has the directory locks only, for which Legacy is still correct).
const (
	versionRun    = "3.3.5~"
	versionDirs   = "2.2~"
	versionNoSupp = "1.0.6~"
	versionLegacy = "0.9.1~"
)

// DetectOptions configures Detect.
type DetectOptions struct {
	// InstalledVersion reports the installed proxmox-backup-server version;
	// nil = InstalledPBSVersion (dpkg-query).
	InstalledVersion func() (version string, installed bool, err error)
	// OldLockingFlag is the flag file; "" = DefaultOldLockingFlag.
	OldLockingFlag string
}

// Detect chooses the locking scheme that the PBS installed on this host uses
// (pbs-format.md §6.7). It returns the scheme and a reason for the log, or an
// error wrapping ErrUnsupported for PBS versions we refuse to write under.
//
//	not installed                  → Run ("no PBS installed")
//	≥ 3.3.5, old-locking flag      → Dirs
//	≥ 3.3.5, no flag               → Run
//	2.2 … 3.3.4                    → Dirs (flag or not)
//	1.0.6 … 2.1.x                  → ErrUnsupported
//	0.9.1 … 1.0.5                  → Legacy
//	older                          → ErrUnsupported
func Detect(o DetectOptions) (Scheme, string, error) {
	iv := o.InstalledVersion
	if iv == nil {
		iv = InstalledPBSVersion
	}
	flag := o.OldLockingFlag
	if flag == "" {
		flag = DefaultOldLockingFlag
	}
	v, installed, err := iv()
	if err != nil {
		return "", "", fmt.Errorf("detect locking scheme: %w", err)
	}
	if !installed {
		return Run, "no PBS installed (" + pbsPackage + " package not found): using the run scheme; " +
			"its lock files are host-local, so only tools on this host see them", nil
	}
	switch {
	case CompareDebianVersions(v, versionRun) >= 0:
		_, err := os.Stat(flag)
		switch {
		case err == nil:
			return Dirs, fmt.Sprintf("PBS %s installed and %s exists (not rebooted since the upgrade): directory locks", v, flag), nil
		case errors.Is(err, fs.ErrNotExist):
			return Run, fmt.Sprintf("PBS %s installed, no %s: lock files under /run", v, flag), nil
		default:
			// PBS itself panics when it cannot tell.
			return "", "", fmt.Errorf("detect locking scheme: cannot check %s: %w", flag, err)
		}
	case CompareDebianVersions(v, versionDirs) >= 0:
		return Dirs, fmt.Sprintf("PBS %s installed (2.2 … 3.3.4): directory locks", v), nil
	case CompareDebianVersions(v, versionNoSupp) >= 0:
		return "", "", fmt.Errorf("PBS %s is installed: versions 1.0.6 … 2.1.x keep manifest locks at "+
			"/run/proxmox-backup/locks/<store>/<type>/<id>/<time>.index.json.lck, which pbsfs does not implement; "+
			"upgrade PBS (these versions are end-of-life): %w", v, ErrUnsupported)
	case CompareDebianVersions(v, versionLegacy) >= 0:
		return Legacy, fmt.Sprintf("PBS %s installed (0.9.1 … 1.0.5): directory locks, manifest lock inside the snapshot", v), nil
	default:
		return "", "", fmt.Errorf("PBS %s is installed: versions before 0.9.1 are not supported: %w", v, ErrUnsupported)
	}
}

// InstalledPBSVersion asks dpkg for the installed proxmox-backup-server
// version (dpkg-query -W -f '${Status}\t${Version}'). A host without dpkg,
// without the package, or with only its configuration files left counts as
// not installed. A package in a transitional state (being upgraded) is an
// error: the running daemons may not match the unpacked version yet.
func InstalledPBSVersion() (string, bool, error) {
	bin, err := exec.LookPath("dpkg-query")
	if err != nil {
		return "", false, nil
	}
	cmd := exec.Command(bin, "-W", "-f", "${Status}\t${Version}", pbsPackage)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(stderr.String(), "no packages found") {
			return "", false, nil
		}
		return "", false, fmt.Errorf("dpkg-query %s: %w: %s", pbsPackage, err, strings.TrimSpace(stderr.String()))
	}
	return parseDpkgStatus(stdout.String())
}

// parseDpkgStatus parses "<want> <error> <status>\t<version>".
func parseDpkgStatus(out string) (string, bool, error) {
	status, version, ok := strings.Cut(strings.TrimRight(out, "\r\n "), "\t")
	f := strings.Fields(status)
	if !ok || len(f) != 3 {
		return "", false, fmt.Errorf("dpkg-query %s: unexpected output %q", pbsPackage, out)
	}
	switch f[2] {
	case "installed":
		if version == "" {
			return "", false, fmt.Errorf("dpkg-query %s: installed without a version", pbsPackage)
		}
		return version, true, nil
	case "not-installed", "config-files":
		return "", false, nil
	default:
		return "", false, fmt.Errorf("dpkg-query %s: package state is %q (upgrade in progress?); retry when dpkg is done", pbsPackage, f[2])
	}
}

// BackupOwner returns the owner PBS gives its lock files: the uid of user
// "backup" and that user's primary gid (pbs-config backup_user). If the user
// does not exist it returns -1, -1 (keep the creator's).
func BackupOwner() (uid, gid int) {
	u, err := user.Lookup("backup")
	if err != nil {
		return -1, -1
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return uid, gid
}
