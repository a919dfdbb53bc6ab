package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"pbsfs/activeops"
	"pbsfs/datastore"
	"pbsfs/lock"
	"pbsfs/pbsconfig"
)

// Running beside PBS (pbs-format.md §10): the datastore's name, its section
// of datastore.cfg, and the checks made before mounting. The rules while
// mounted live in the datastore package (neighbour.go there).

// pbsConfigDirEnv overrides the default of --pbs-config-dir (tests point it
// at a scratch tree).
const pbsConfigDirEnv = "PBSFS_PBS_CONFIG_DIR"

// byUUIDEnv overrides /dev/disk/by-uuid for the mount check of removable
// datastores (tests only: containers have no udev).
const byUUIDEnv = "PBSFS_DEV_DISK_BY_UUID"

// defaultPBSConfigDir is --pbs-config-dir's default.
func defaultPBSConfigDir() string {
	if d := os.Getenv(pbsConfigDirEnv); d != "" {
		return d
	}
	return pbsconfig.DefaultDir
}

// trackingFixed is the first PBS that counts every process's active
// operations (§10.3.3); older ones need activeops' LegacyTracking.
const trackingFixed = "4.0.21~"

// pbsSide is what pbsfs found out about PBS for this mount.
type pbsSide struct {
	name      string
	source    string               // how the name was found, for the log
	section   *pbsconfig.Datastore // nil: PBS does not know this datastore
	installed bool
	version   string
}

// establishPBS finds the datastore's PBS name and section (the store at
// path, absolute) and refuses what PBS's rules forbid:
//
//   - On a host with PBS installed, a read-write mount needs the name PBS
//     locks the datastore under: from datastore.cfg by device and inode,
//     or --store naming a section whose directory is this one. Without
//     it none of pbsfs's locks would interlock with PBS's.
//   - Without PBS, or read-only, the directory's name is the fallback.
//   - A datastore.cfg PBS cannot parse refuses read-write mounts where PBS
//     is installed (PBS serves no datastore with it).
func (o *mountOptions) establishPBS(path string, log *slog.Logger) (pbsSide, error) {
	var side pbsSide
	iv := o.pbsVersion
	if iv == nil {
		iv = lock.InstalledPBSVersion
	}
	v, installed, err := iv()
	if err != nil {
		if !o.readOnly {
			return side, exitf(ExitPBS, "cannot tell whether PBS is installed: %w", err)
		}
		log.Warn("cannot tell whether PBS is installed", "err", err)
	}
	side.installed, side.version = installed, v
	strict := installed && !o.readOnly
	cfgFile := filepath.Join(o.pbsConfigDir, pbsconfig.DatastoreFile)
	cfg, _, exists, err := pbsconfig.Load(o.pbsConfigDir)
	if err != nil {
		if strict {
			return side, exitf(ExitPBS, "%w; PBS itself serves no datastore while its datastore.cfg does not parse: fix it first", err)
		}
		log.Warn("cannot use PBS's datastore configuration", "err", err)
		cfg = &pbsconfig.Config{}
	}
	if o.storeName != "" {
		side.name, side.source = o.storeName, "--store"
		side.section = cfg.Lookup(o.storeName)
		switch {
		case side.section != nil:
			same, err := pbsconfig.SameDir(side.section.Dir(), path)
			if err != nil || !same {
				return side, exitf(ExitPBS, "--store %s: PBS's datastore %q is at %s, which is not %s (compared by device and inode%s)",
					o.storeName, o.storeName, side.section.Dir(), path, errSuffix(err))
			}
		case strict:
			return side, exitf(ExitPBS, "--store %s: %s has no datastore %q", o.storeName, cfgFile, o.storeName)
		}
		return side, nil
	}
	found := cfg.FindDir(path)
	switch {
	case len(found) == 1:
		side.name, side.source, side.section = found[0].Name, "from "+cfgFile, found[0]
		return side, nil
	case len(found) > 1 && strict:
		return side, exitf(ExitPBS, "%s lists %d datastores at %s (%s, %s, ...); give the one to use with --store", cfgFile, len(found), path, found[0].Name, found[1].Name)
	case len(found) > 1:
		side.name, side.source, side.section = found[0].Name, "the first of several in "+cfgFile, found[0]
		return side, nil
	case strict:
		why := "lists no datastore at " + path
		if !exists {
			why = "does not exist"
		}
		return side, exitf(ExitPBS, "PBS %s is installed, but %s %s: pbsfs cannot know the name PBS locks this datastore under, "+
			"so its locks would not keep PBS out; give the name with --store NAME, or mount with --read-only", v, cfgFile, why)
	}
	side.name = filepath.Base(path)
	switch {
	case !exists:
		side.source = "the directory name: " + cfgFile + " does not exist"
	default:
		side.source = "the directory name: " + cfgFile + " lists no datastore at " + path
	}
	return side, nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// checkAvailable refuses to mount a datastore PBS does not let be used:
// a maintenance mode that forbids reads, or (read-write) writes; a
// removable datastore whose device is not mounted. An S3 backend is only
// logged: the mount serves the local cache and refuses changes.
func (o *mountOptions) checkAvailable(side pbsSide, log *slog.Logger) error {
	sec := side.section
	if sec == nil {
		return nil
	}
	m := sec.Maintenance
	if err := m.Check(pbsconfig.Read); err != nil {
		return exitf(ExitPBS, "datastore '%s' is unavailable: %v; pbsfs can mount it when the mode is lifted", sec.Name, err)
	}
	if err := m.Check(pbsconfig.Write); err != nil && !o.readOnly {
		return exitf(ExitPBS, "datastore '%s' is unavailable for changes: %v; mount it with --read-only", sec.Name, err)
	}
	if err := sec.Mounted("", os.Getenv(byUUIDEnv)); err != nil {
		return exitf(ExitPBS, "datastore '%s' is not mounted: %v (mount it through PBS first: proxmox-backup-manager datastore mount %s)", sec.Name, err, sec.Name)
	}
	if !sec.Backend.Local() && !o.readOnly {
		log.Warn("S3-backed datastore: its directory is PBS's local cache; changes are refused (make them through PBS), "+
			"and archive contents are served only as far as their chunks are cached", "datastore", sec.Name)
	}
	return nil
}

// pbsOptions are the datastore's PBS options for a datastore PBS knows.
func (o *mountOptions) pbsOptions(side pbsSide, uid, gid int) *datastore.PBSOptions {
	if side.section == nil {
		return nil
	}
	legacy := side.installed && lock.CompareDebianVersions(side.version, trackingFixed) < 0
	return &datastore.PBSOptions{
		ConfigDir: o.pbsConfigDir,
		Name:      side.name,
		UID:       uid,
		GID:       gid,
		ByUUIDDir: os.Getenv(byUUIDEnv),
		ActiveOps: activeops.Options{
			// Beside the lock directory: both are PBS's, under /run/proxmox-backup.
			Dir: filepath.Join(filepath.Dir(filepath.Clean(o.lockDir)), "active-operations"),
			UID: uid, GID: gid, LegacyTracking: legacy,
		},
	}
}
