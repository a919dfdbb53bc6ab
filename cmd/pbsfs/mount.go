package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"pbsfs/datastore"
	pbsfs "pbsfs/fs"
	"pbsfs/lock"
)

const mountHelp = `Usage: pbsfs mount [OPTION]... DATASTORE MOUNTPOINT
  or:  pbsfs mount --s3-endpoint URL [OPTION]... s3://BUCKET/STORE MOUNTPOINT

Mount the Proxmox Backup Server datastore at DATASTORE (the directory PBS
has configured as the datastore's path) on MOUNTPOINT, an existing empty
directory, and serve it in the foreground until it is unmounted.

s3://BUCKET/STORE reads a PBS 4 datastore with an S3 backend straight from
its bucket, from any host that reaches the bucket, read-only: every change
fails with "Read-only file system" (changes go through PBS, whose locks
cannot be taken from another host). Credentials come from
$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, --s3-credentials FILE or
the s3.cfg section, never from the command line.

The tree mirrors the datastore: [ns/NAME/]...TYPE/ID/TIME/, TYPE being vm, ct
or host. Each group directory holds
  notes          the group's notes (read-write)
  owner          the group's owner (read-only)
and each snapshot directory holds
  notes          the snapshot's notes, kept in its manifest (read-write)
  manifest.json  the manifest (read-only)
  ...            the contents of its archives, decoded (read-only; hidden
                 with --no-archives)
Notes are saved when the file is closed or fsync'ed, under the same manifest
lock PBS uses; a save over a change made meanwhile by someone else fails
with "Stale file handle" instead of losing it. 'rmdir' of a snapshot
directory forgets the snapshot as PBS's prune does (protected snapshots and
snapshots in use are refused); 'rmdir' of an empty group removes it.

Options:
      --read-only          serve without write access (no locks taken)
      --allow-other        let other users access the mount; the kernel then
                           checks the modes shown (needs user_allow_other in
                           /etc/fuse.conf unless run as root)
      --store NAME         the datastore's PBS name, used in lock file paths
                           (default: looked up by path in datastore.cfg;
                           where PBS is not installed, the directory's name;
                           with PBS installed a read-write mount needs it)
      --pbs-config-dir DIR PBS's configuration directory, whose datastore.cfg
                           names the datastore and sets its maintenance mode
                           (default /etc/proxmox-backup, or $PBSFS_PBS_CONFIG_DIR)
      --lock-scheme SCHEME auto, run, dirs or legacy (default auto: follow the
                           installed PBS version, see below)
      --lock-dir DIR       root of PBS's lock files
                           (default /run/proxmox-backup/locks)
      --cache-size N       decoded manifests kept in memory (default 1024)
      --recheck DURATION   how often to look for changes PBS makes (backups,
                           prune, verify, notes edited in the web UI) and drop
                           what the kernel cached of them (default 2s; 0: never,
                           the kernel then caches for 1s only)
      --ttl DURATION       how long the kernel may cache entries, attributes
                           and listings (default 10m, or 1s with --recheck 0)
      --read-ahead KiB     kernel read-ahead for sequential reads of the mount
                           (default 1024; 0 keeps the kernel's 128; needs root)
` + archivesHelp + s3Help + `  -v, --verbose            log what pbsfs does (info level)
      --debug              log every FUSE request (debug level)
      --log-file FILE      append the log to FILE instead of stderr (or, in
                           the background, syslog)
      --cpuprofile FILE    write a CPU profile of the whole mount to FILE
                           (for go tool pprof)
      --memprofile FILE    write a heap profile to FILE when the mount ends
  -h, --help               print this help

Locking: PBS 3.3.5 and later keep lock files under /run/proxmox-backup/locks
(scheme run); older versions, and 3.3.5+ before the first reboot after the
upgrade, lock directories (scheme dirs); 0.9.1 to 1.0.5 use scheme legacy.
With auto, pbsfs asks dpkg which version is installed and checks
/run/proxmox-backup/old-locking. Run pbsfs on the PBS host itself: the lock
files are local to it.

Stop serving with Ctrl-C, SIGTERM or SIGHUP (also sent when the terminal or
ssh session pbsfs runs in goes away): pbsfs unmounts, lazily if the mount is
busy, and exits 0; a second signal makes it exit at once. Or unmount:
fusermount3 -u MOUNTPOINT. Logs go to stderr.

mount(8) and fstab run pbsfs as 'pbsfs DATASTORE MOUNTPOINT -o OPTIONS', with
each option above as NAME[=VALUE] (ro, allow_other, keyfile=FILE, ...); pbsfs
then goes to the background once the mount is ready (man pbsfs).

Examples:
  pbsfs mount /mnt/datastore/store1 /mnt/pbs
  pbsfs mount --read-only --allow-other /mnt/datastore/store1 /mnt/pbs
  echo "verified by hand" >> /mnt/pbs/vm/100/2024-06-05T14:22:01Z/notes
  rmdir /mnt/pbs/ns/dev/ct/200/2024-01-01T00:00:00Z
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... pbsfs mount \
      --s3-endpoint https://s3.example.net --s3-region eu-central-1 \
      s3://pbs-bucket/store1 /mnt/pbs

` + exitStatusHelp

// mountOptions are the settings of one mount, from flags or from demo.
type mountOptions struct {
	store      string // datastore path as given
	mountpoint string // as given
	readOnly   bool
	allowOther bool
	storeName  string // --store; "" = look up
	scheme     string // auto, run, dirs, legacy
	lockDir    string
	cacheSize  int
	recheck    time.Duration // --recheck; 0 = off
	ttl        time.Duration // --ttl; 0 = the default
	readAhead  int           // --read-ahead in KiB; 0 = the kernel's
	archives   archiveFlags  // --archives, --keyfile, ... (archives.go)
	s3         s3Flags       // --s3-endpoint, ... for an s3:// datastore (s3.go)
	log        logOptions
	profiles   profileFlags // --cpuprofile, --memprofile (profile.go)
	background *os.File     // the mount(8) form's background child: its readiness pipe (mountform.go)

	pbsConfigDir string                                      // --pbs-config-dir
	pbsVersion   func() (version string, ok bool, err error) // nil = lock.InstalledPBSVersion
	detect       func() (lock.Scheme, string, error)         // nil = lock.Detect with defaults
	lockOwner    func() (int, int)                           // nil = lock.BackupOwner
	onReady      func(storePath, mountpoint string)          // after the mount is up (demo prints its tips)
	cleanupAge   time.Duration                               // group-directory temp files younger than this are left at start (see datastore.CleanupTemps)
	stderr       io.Writer                                   // messages and the log (through a logWriter while serving)
	stdout       io.Writer                                   // where a failing stderr is reported once; may be nil
}

func mountCommand(args []string, stdout, stderr io.Writer) error {
	const cmd = "pbsfs mount"
	o := mountOptions{stderr: stderr, stdout: stdout}
	fs := mountFlags(cmd, &o)
	pos, err := parseArgs(fs, cmd, mountHelp, args, stdout)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		return &usageError{cmd: cmd, msg: "missing DATASTORE and MOUNTPOINT"}
	case 1:
		return &usageError{cmd: cmd, msg: "missing MOUNTPOINT"}
	case 2:
	default:
		return &usageError{cmd: cmd, msg: fmt.Sprintf("too many arguments: %q", pos[2:])}
	}
	o.store, o.mountpoint = pos[0], pos[1]
	if err := o.validate(cmd); err != nil {
		return err
	}
	return serve(o)
}

// mountFlags is the flag set of pbsfs mount, filling o. It is the one list
// of mount options: the mount(8) form takes each of them as -o NAME[=VALUE]
// (mountform.go), and a test checks that --help, the man page and the
// README list exactly these.
func mountFlags(cmd string, o *mountOptions) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.BoolVar(&o.readOnly, "read-only", false, "")
	fs.BoolVar(&o.allowOther, "allow-other", false, "")
	fs.StringVar(&o.storeName, "store", "", "")
	fs.StringVar(&o.pbsConfigDir, "pbs-config-dir", defaultPBSConfigDir(), "")
	fs.StringVar(&o.scheme, "lock-scheme", "auto", "")
	fs.StringVar(&o.lockDir, "lock-dir", lock.DefaultDir, "")
	fs.IntVar(&o.cacheSize, "cache-size", datastore.DefaultCacheSize, "")
	fs.DurationVar(&o.recheck, "recheck", pbsfs.DefaultRecheck, "")
	fs.DurationVar(&o.ttl, "ttl", 0, "")
	fs.IntVar(&o.readAhead, "read-ahead", DefaultReadAheadKiB, "")
	o.archives.register(fs)
	o.s3.register(fs)
	fs.BoolVar(&o.log.verbose, "v", false, "")
	fs.BoolVar(&o.log.verbose, "verbose", false, "")
	fs.BoolVar(&o.log.debug, "debug", false, "")
	fs.StringVar(&o.log.file, "log-file", "", "")
	fs.StringVar(&o.profiles.cpu, "cpuprofile", "", "")
	fs.StringVar(&o.profiles.mem, "memprofile", "", "")
	return fs
}

// validate checks flag values that need no file system access.
func (o *mountOptions) validate(cmd string) error {
	if o.recheck < 0 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--recheck: %v is negative", o.recheck)}
	}
	if o.ttl < 0 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--ttl: %v is negative", o.ttl)}
	}
	if o.scheme != "auto" {
		if _, err := lock.ParseScheme(o.scheme); err != nil {
			return &usageError{cmd: cmd, msg: fmt.Sprintf("--lock-scheme: %q is not auto, run, dirs or legacy", o.scheme)}
		}
	}
	if o.cacheSize < 1 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--cache-size: %d is not a positive number", o.cacheSize)}
	}
	if o.readAhead < 0 || o.readAhead > 1<<20 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--read-ahead: %d is not a size in KiB between 0 and 1048576", o.readAhead)}
	}
	if err := o.archives.validate(cmd); err != nil {
		return err
	}
	if err := o.s3.validate(cmd, o.store); err != nil {
		return err
	}
	if o.storeName != "" && !datastore.ValidSafeID(o.storeName) {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--store: %q is not a valid datastore name", o.storeName)}
	}
	return nil
}

// lockScheme resolves --lock-scheme, detecting it for auto.
func (o *mountOptions) lockScheme(log *slog.Logger) (lock.Scheme, error) {
	if o.scheme != "auto" {
		s, err := lock.ParseScheme(o.scheme)
		if err != nil {
			return "", exitf(ExitUsage, "%w", err)
		}
		log.Info("lock scheme given", "scheme", s)
		return s, nil
	}
	detect := o.detect
	if detect == nil {
		detect = func() (lock.Scheme, string, error) { return lock.Detect(lock.DetectOptions{}) }
	}
	s, reason, err := detect()
	if err != nil {
		if o.readOnly {
			// Read-only mounts take no locks: the scheme does not matter.
			log.Warn("cannot determine the PBS lock scheme; irrelevant for a read-only mount", "err", err)
			return lock.Run, nil
		}
		return "", exitf(ExitLock, "cannot choose a lock scheme: %w (override with --lock-scheme, or use --read-only)", err)
	}
	log.Info("lock scheme detected", "scheme", s, "reason", reason)
	return s, nil
}

// openStore runs the checks, chooses the lock scheme and opens the store.
func (o *mountOptions) openStore(log *slog.Logger) (store *datastore.Store, mnt string, err error) {
	if isS3Source(o.store) {
		return o.openBucketStore(log) // s3.go
	}
	if o.pbsConfigDir == "" {
		o.pbsConfigDir = defaultPBSConfigDir()
	}
	abs, err := filepath.Abs(o.store)
	if err != nil {
		return nil, "", exitf(ExitDatastore, "datastore %s: %w", o.store, err)
	}
	// PBS's view first: a removable datastore whose device is not mounted
	// is an empty directory, which checkDatastore would call "not a PBS
	// datastore".
	side, err := o.establishPBS(abs, log)
	if err != nil {
		return nil, "", err
	}
	if err := o.checkAvailable(side, log); err != nil {
		return nil, "", err
	}
	storePath, err := checkDatastore(o.store)
	if err != nil {
		return nil, "", err
	}
	mnt, err = checkMountpoint(o.mountpoint, o.stderr)
	if err != nil {
		return nil, "", err
	}
	if err := checkOverlap(storePath, mnt); err != nil {
		return nil, "", err
	}
	name := side.name
	log.Info("datastore name", "name", name, "source", side.source, "known to PBS", side.section != nil)
	if !datastore.ValidSafeID(name) {
		return nil, "", exitf(ExitDatastore, "the datastore name %q (%s) is not a valid PBS datastore name; give it with --store", name, side.source)
	}
	scheme, err := o.lockScheme(log)
	if err != nil {
		return nil, "", err
	}
	owner := o.lockOwner
	if owner == nil {
		owner = func() (int, int) {
			if os.Geteuid() != 0 {
				return -1, -1 // only root can give lock files to backup:backup
			}
			return lock.BackupOwner()
		}
	}
	uid, gid := owner()
	lc := lock.Config{Scheme: scheme, Dir: o.lockDir, Store: name, Base: storePath, UID: uid, GID: gid}
	if _, err := lock.New(lc); err != nil {
		return nil, "", exitf(ExitLock, "%w", err)
	}
	archives, err := o.archives.options(o.stderr, log)
	if err != nil {
		return nil, "", err
	}
	store, err = datastore.Open(storePath, datastore.Options{
		Lock:      lc,
		ReadOnly:  o.readOnly,
		CacheSize: o.cacheSize,
		Archives:  archives,
		Logger:    log,
		PBS:       o.pbsOptions(side, uid, gid),
	})
	if err != nil {
		return nil, "", exitf(ExitDatastore, "%w", err)
	}
	return store, mnt, nil
}

// serve mounts and serves until unmounted.
func serve(o mountOptions) error {
	// Catch SIGHUP, SIGINT and SIGTERM from the start: one that arrives
	// while the store is opened or the mount set up is acted on as soon as
	// serving begins (it unmounts at once), instead of killing the process
	// and leaving a dead mount behind. SIGPIPE is ignored from here on.
	sigs := notifySignals()
	defer signal.Stop(sigs)
	// Messages and log lines never block or fail the mount (logWriter). In
	// the background (mount(8) form) stderr is /dev/null once the mount is
	// ready, and the log goes to syslog or --log-file.
	if o.background == nil {
		lw := newLogWriter(o.stderr, o.stdout)
		defer lw.Close(logFlushTimeout)
		o.stderr = lw
	}
	stopStatus := handleStatus(o.stderr) // kill -USR1: a status line
	defer stopStatus()
	log, closeLog, err := openLogger(o.log, o.stderr, o.background != nil)
	if err != nil {
		return err
	}
	defer closeLog()
	sd := &systemdNotifier{log: log}
	defer sd.stopping()
	store, mnt, err := o.openStore(log)
	if err != nil {
		return err
	}
	defer store.Close()
	defer startMemoryLimit(log, store.ChunkCacheBytes())() // memlimit.go
	stopCPU, err := o.profiles.startCPU(log)
	if err != nil {
		return exitf(ExitUsage, "%w", err)
	}
	defer stopCPU()

	recheck := o.recheck
	if recheck == 0 {
		recheck = -1 // off
	}
	filesys := pbsfs.New(store, pbsfs.Options{ReadOnly: o.readOnly, TTL: o.ttl, Recheck: recheck, PxarCap: o.archives.pxarCap(), Logger: log})
	conn, err := fuse.Mount(mnt, mountOptionsFor(store.Path(), o)...)
	if err != nil {
		msg := err.Error()
		hint := ""
		switch {
		case strings.Contains(msg, "user_allow_other"):
			hint = " (add user_allow_other to /etc/fuse.conf, or run as root)"
		case strings.Contains(msg, "executable file not found"):
			hint = " (install the fuse3 package)"
		}
		return exitf(ExitMount, "mount %s: %w%s", mnt, err, hint)
	}
	forced := false
	defer func() {
		// Close waits for the reader of the FUSE device, which keeps
		// reading while a detached mount is still in use; after a forced
		// exit the process exit closes the device instead.
		if !forced {
			conn.Close()
		}
	}()
	srv := fusefs.New(conn, fuseConfig(log, o.log))
	filesys.SetServer(srv)
	defer o.profiles.writeHeap(log, filesys, srv)

	done := make(chan error, 1)
	go func() { done <- srv.Serve(filesys) }()
	if o.readAhead > 0 {
		setReadAhead(mnt, o.readAhead, "/sys", log) // stats mnt: only once served
	}

	if o.background == nil {
		fmt.Fprintf(o.stderr, "pbsfs: serving %s at %s\n", store.Path(), mnt)
		fmt.Fprintf(o.stderr, "pbsfs: unmount with: fusermount3 -u %s (or press Ctrl-C here)\n", mnt)
	} else if err := detach(o.background); err != nil {
		log.Warn("going to the background", "err", err)
	}
	sd.ready(store.Path(), mnt)
	if lk := store.Locker(); lk != nil {
		log.Info("mounted", "datastore", store.Path(), "mountpoint", mnt, "read-only", o.readOnly,
			"allow-other", o.allowOther, "lock-scheme", lk.Scheme())
	} else { // a bucket: no locks
		log.Info("mounted", "datastore", store.Path(), "mountpoint", mnt, "read-only", true, "allow-other", o.allowOther)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait() // before store.Close
	defer cancel()
	if !store.ReadOnly() {
		wg.Go(func() { cleanupTemps(ctx, store, o.cleanupAge, log) })
	}
	wg.Go(func() { filesys.Revalidate(ctx) })
	if o.onReady != nil {
		o.onReady(store.Path(), mnt)
	}

	force, stop := handleSignals(sd.relayStopping(ctx, sigs), mnt, log, o.stderr)
	defer stop()
	select {
	case err := <-done:
		if err != nil {
			// The connection failed: do not unmount from here (a vanished
			// mount can make a mirroring job delete its copy), say how to.
			if o.background != nil {
				log.Error("serving failed; the mount may be dead, unmount it with fusermount3 -u", "mountpoint", mnt, "err", err)
			}
			return exitf(ExitOther, "serving %s failed: %w; the mount may be dead, unmount it with: fusermount3 -u %s", mnt, err, mnt)
		}
		log.Info("unmounted", "mountpoint", mnt)
		if b := store.Bucket(); b != nil {
			log.Info("S3 requests sent", "datastore", store.Path(), "requests", b.Requests())
		}
	case <-force:
		// Told to go while unmounting, or detached lazily and still in
		// use: closing the FUSE device (on exit) aborts the connection for
		// the processes still inside. A mount not detached yet (the
		// unmount still runs or failed) is detached now, so that no dead
		// mount is left behind.
		if isMountpoint(mnt) {
			if _, err := unmount(mnt, log); err != nil {
				fmt.Fprintf(o.stderr, "pbsfs: cannot unmount %s: %v; unmount it with: fusermount3 -u %s\n", mnt, err, mnt)
			}
		}
		log.Info("exiting with the mount still in use", "mountpoint", mnt)
		forced = true
	}
	return nil
}

// mountOptionsFor are the FUSE mount options: pbsfs's, and the datastore
// path as the mount's source (what mount(8), findmnt, df and systemd show
// and compare with fstab: "mount -a" then knows the line is mounted),
// unless the path has a character fusermount3's option list cannot carry.
func mountOptionsFor(storePath string, o mountOptions) []fuse.MountOption {
	opts := pbsfs.MountOptions(o.readOnly, o.allowOther)
	if !strings.ContainsAny(storePath, ",\\") {
		opts = append(opts, fuse.FSName(storePath))
	}
	return opts
}

// logFlushTimeout bounds how long pbsfs waits at exit for queued log lines
// to be written (a log reader that stopped reading gets no more).
const logFlushTimeout = 2 * time.Second

// cleanupTemps removes temp files a killed pbsfs left in the store, in the
// background, under the manifest locks in snapshot directories and checking
// the writers' flocks in group directories (datastore.CleanupTemps), so
// that what a crash left is gone at the next mount.
func cleanupTemps(ctx context.Context, store *datastore.Store, minAge time.Duration, log *slog.Logger) {
	n, err := store.CleanupTemps(ctx, minAge)
	switch {
	case errors.Is(err, context.Canceled):
	case err != nil:
		log.Warn("cleaning up temp files of interrupted writes", "err", err)
	case n > 0:
		log.Info("removed temp files of interrupted writes", "count", n)
	}
}
