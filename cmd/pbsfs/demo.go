package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"pbsfs/demo"
	pbsfs "pbsfs/fs"
	"pbsfs/lock"
)

const demoHelp = `Usage: pbsfs demo [OPTION]... [DIR]

Create a demo datastore and mount it on a fresh temporary directory, print
what to try, and serve until Ctrl-C or unmount. Nothing outside the demo is
touched: its lock files live in a temporary directory too.

By default the datastore is a small, realistic sample: namespaces, all three
backup types, notes in several languages, group notes and owners, archives
with real chunks (configs, sparse disk images, pxar file archives of small
root file systems: v1 with catalog and split), one protected, one
unfinished and two encrypted snapshots. The demo mounts it with the
demo's encryption key, written as a PBS key file (no password) so that
'pbsfs mount --keyfile' can be tried on the store too. With --groups,
--snapshots or --namespaces it is a large generated one instead (manifests
only), for trying pbsfs at scale.

The datastore is written to DIR (which must be absent or empty) and kept, or
without DIR to a temporary directory removed when pbsfs exits. The
temporary mountpoint is always removed.

Options:
      --groups N           generate a large datastore with N groups in total
      --snapshots M        ... with M snapshots per group
      --namespaces K       ... spread over K namespaces besides the root
      --seed S             seed of the generated datastore (default 1)
      --keyfile FILE       write the demo key file to FILE (which must not
                           exist) and keep it (default: in the temporary
                           directory, removed when pbsfs exits)
      --read-only          serve without write access
  -v, --verbose            log what pbsfs does (info level)
      --debug              log every FUSE request (debug level)
  -h, --help               print this help

Examples:
  pbsfs demo
  pbsfs demo ./demo-store
  pbsfs demo --keyfile ./demo-key.json ./demo-store
  pbsfs mount --keyfile ./demo-key.json ./demo-store /mnt/pbs   (later)
  pbsfs demo --groups 200 --snapshots 100 --namespaces 4 /var/tmp/big-store

` + exitStatusHelp

type demoOptions struct {
	groups, snapshots, namespaces int
	seed                          int64
	readOnly                      bool
	log                           logOptions
	dir                           string
	keyfile                       string // --keyfile; "" = in the temporary directory
}

// large reports whether a generated datastore was asked for.
func (o demoOptions) large() bool { return o.groups > 0 || o.snapshots > 0 || o.namespaces > 0 }

func demoCommand(args []string, stdout, stderr io.Writer) error {
	const cmd = "pbsfs demo"
	var o demoOptions
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.IntVar(&o.groups, "groups", 0, "")
	fs.IntVar(&o.snapshots, "snapshots", 0, "")
	fs.IntVar(&o.namespaces, "namespaces", 0, "")
	fs.Int64Var(&o.seed, "seed", 1, "")
	fs.BoolVar(&o.readOnly, "read-only", false, "")
	fs.StringVar(&o.keyfile, "keyfile", "", "")
	fs.BoolVar(&o.log.verbose, "v", false, "")
	fs.BoolVar(&o.log.verbose, "verbose", false, "")
	fs.BoolVar(&o.log.debug, "debug", false, "")
	pos, err := parseArgs(fs, cmd, demoHelp, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("too many arguments: %q", pos[1:])}
	}
	if len(pos) == 1 {
		o.dir = pos[0]
	}
	if o.keyfile != "" {
		if _, err := os.Lstat(o.keyfile); err == nil {
			return &usageError{cmd: cmd, msg: fmt.Sprintf("--keyfile: %s exists; give a new file", o.keyfile)}
		}
	}
	for name, v := range map[string]int{"--groups": o.groups, "--snapshots": o.snapshots, "--namespaces": o.namespaces} {
		if v < 0 {
			return &usageError{cmd: cmd, msg: fmt.Sprintf("%s: %d is negative", name, v)}
		}
	}
	return runDemo(o, stdout, stderr)
}

func runDemo(o demoOptions, stdout, stderr io.Writer) (err error) {
	tmp, err := os.MkdirTemp("", "pbsfs-demo-")
	if err != nil {
		return exitf(ExitOther, "%w", err)
	}
	keepTmp := false
	defer func() {
		if !keepTmp {
			os.RemoveAll(tmp)
		}
	}()
	storeDir, keep := o.dir, true
	if storeDir == "" {
		storeDir, keep = filepath.Join(tmp, "store"), false
	}
	mnt := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return exitf(ExitMountPoint, "%w", err)
	}

	var sum demo.Summary
	kind := "sample"
	if o.large() {
		kind = "generated"
		sum, err = demo.Large(storeDir, demo.LargeOptions{
			Namespaces: o.namespaces, Groups: o.groups, SnapshotsPerGroup: o.snapshots, Seed: o.seed,
		})
	} else {
		sum, err = demo.Sample(storeDir)
	}
	if err != nil {
		return exitf(ExitDatastore, "creating the demo datastore: %w", err)
	}
	fmt.Fprintf(stdout, "pbsfs demo: wrote a %s datastore to %s: %d namespaces, %d groups, %d snapshots\n",
		kind, storeDir, sum.Namespaces, sum.Groups, sum.Snapshots)
	keyPath := o.keyfile
	if keyPath == "" {
		keyPath = filepath.Join(tmp, "demo-key.json")
	}
	if err := demo.WriteKeyFile(keyPath); err != nil {
		return exitf(ExitKey, "%w", err)
	}
	fmt.Fprintf(stdout, "pbsfs demo: wrote the demo encryption key to %s (no password)\n", keyPath)

	mo := mountOptions{
		store:      storeDir,
		mountpoint: mnt,
		readOnly:   o.readOnly,
		storeName:  "demo",
		scheme:     string(lock.Run),
		lockDir:    filepath.Join(tmp, "locks"),
		// The demo store is no PBS datastore: PBS's configuration and
		// rules do not apply to it.
		pbsConfigDir: filepath.Join(tmp, "no-pbs-config"),
		pbsVersion:   func() (string, bool, error) { return "", false, nil },
		cacheSize:    4096,
		recheck:      pbsfs.DefaultRecheck,
		readAhead:    DefaultReadAheadKiB,
		// The generated store has manifests only: no archives to show.
		archives:  archiveFlags{enabled: !o.large(), keyfile: keyPath},
		log:       o.log,
		lockOwner: func() (int, int) { return -1, -1 },
		stderr:    stderr,
		stdout:    stdout,
		onReady: func(_, mnt string) {
			printTips(stdout, mnt, sum, !o.large(), o.readOnly)
			if keep {
				again := "--keyfile " + keyPath
				if o.large() {
					again = "--no-archives" // manifests only
				}
				fmt.Fprintf(stdout, "\nThe datastore stays in %s; mount it again with:\n  pbsfs mount %s %s MOUNTPOINT\n",
					storeDir, again, storeDir)
			} else {
				fmt.Fprintf(stdout, "\nThe datastore is deleted when pbsfs exits; give a DIR to keep it.\n")
			}
		},
	}
	if err := serve(mo); err != nil {
		if exitCode(err) == ExitOther {
			keepTmp = true // the mount may still be there: never remove below it
		}
		return err
	}
	return nil
}

// printTips prints what to try on the mounted demo datastore.
func printTips(w io.Writer, mnt string, sum demo.Summary, sample, readOnly bool) {
	var snapNotes, groupNotes, victim string
	for _, p := range sum.Notes {
		dir := path.Dir(p)
		isSnap := strings.HasSuffix(dir, "Z") && strings.Count(path.Base(dir), ":") == 2
		switch {
		case isSnap && snapNotes == "" && dir != demo.SampleEncrypted:
			snapNotes = p
		case isSnap && victim == "" && dir != demo.SampleProtected && dir != demo.SampleUnfinished && dir != demo.SampleEncrypted:
			victim = dir
		case !isSnap && groupNotes == "":
			groupNotes = p
		}
	}
	fmt.Fprintf(w, "pbsfs demo: mounted at %s\n\nTry this in another terminal:\n", mnt)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	tip := func(cmd, what string) {
		if what == "" {
			fmt.Fprintf(tw, "  %s\n", cmd)
			return
		}
		fmt.Fprintf(tw, "  %s\t# %s\n", cmd, what)
	}
	tip("cd "+mnt, "")
	tip("ls -l *", "backup types and namespaces (ns), and what they hold")
	if snapNotes != "" {
		snap := path.Dir(snapNotes)
		tip("ls -l "+snap, "a snapshot: notes, manifest.json and its archives")
		tip("cat "+snap+"/manifest.json", "its manifest, as PBS stores it")
		tip("cat "+snapNotes, "its notes")
		if !readOnly {
			tip(`echo "restore tested" >> `+snapNotes, "append to the notes")
		}
	}
	if groupNotes != "" && !readOnly {
		tip("vim "+groupNotes, "edit the group's notes")
	}
	if sample {
		tip("cat "+demo.SampleVM+"/qemu-server.conf", "a VM's config, decoded from its backup")
		tip("fdisk -l "+demo.SampleVM+"/drive-scsi0.img", "its 8 GiB disk image, read chunk by chunk")
		tip("diff "+demo.SampleCTFirst+"/pct.conf "+demo.SampleCTSecond+"/pct.conf", "two backups of a container's config")
		tip("cat "+demo.SampleEncrypted+"/qemu-server.conf", "encrypted, decrypted with the demo key")
		tip("ls -l "+demo.SampleCTFirst+"/root.pxar/etc", "the container's files, from its pxar archive")
		tip("diff -r "+demo.SampleCTFirst+"/root.pxar/etc "+demo.SampleCTSecond+"/root.pxar/etc", "what changed in /etc between two backups")
		tip("getfacl "+demo.SampleCTFirst+"/root.pxar/srv/share", "ACLs and xattrs as archived (getfattr -d -m -)")
		tip("ls "+demo.SampleSplit+"/root.pxar", "a split archive (.mpxar + .ppxar), the same kind of tree")
		tip("ls "+demo.SampleUnfinished, "a backup still running: no files yet")
	}
	if !readOnly {
		if victim != "" {
			tip("rmdir "+victim, "forget a snapshot")
		}
		if sample {
			tip("rmdir "+demo.SampleProtected, "refused: the snapshot is protected")
		}
	}
	tip("fusermount3 -u "+mnt, "unmount (or press Ctrl-C here)")
	tw.Flush()
}
