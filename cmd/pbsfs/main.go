package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version and commit are set at build time with -ldflags
// "-X main.version=1.2.3 -X main.commit=REV" (scripts/build-deb does). The
// commit is needed where Go's build info has none: builds with
// -buildvcs=false, or in a git worktree, which Go does not recognise.
var (
	version = "devel"
	commit  = ""
)

const mainHelp = `Usage: pbsfs COMMAND [OPTION]... [ARGUMENT]...
       pbsfs DATASTORE MOUNTPOINT [-o OPTION[,OPTION]...]

pbsfs mounts a Proxmox Backup Server (PBS) datastore as a file system. Every
backup snapshot is a directory holding its notes, which can be edited with
any editor, and its manifest as JSON; removing a snapshot directory forgets
the snapshot. Changes take the same locks as PBS itself, so pbsfs can run on
a live PBS host.

Commands:
  mount     mount a datastore and serve it until unmounted
  demo      create a sample datastore and mount it, to try pbsfs out
  version   print the version
  help      print help for a command

Run 'pbsfs COMMAND --help' for the options of a command.

The second form is how mount(8) runs pbsfs for an fstab line or
'mount -t fuse.pbsfs DATASTORE MOUNTPOINT -o OPTIONS': every 'pbsfs mount'
flag is an option (keyfile=FILE, ro, allow_other, ...), and pbsfs goes to the
background once the mount is ready, logging to syslog (or log-file=FILE).
See man pbsfs.

Examples:
  pbsfs mount /mnt/datastore/store1 /mnt/pbs
  mount -t fuse.pbsfs /mnt/datastore/store1 /mnt/pbs -o ro,allow_other
  pbsfs demo
`

func main() {
	setGCPercent()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultGOGC is the garbage collector's target pbsfs runs with unless GOGC
// is set. A mount's heap is mostly long-lived nodes, one per entry the
// kernel holds (hundreds of thousands after a walk of a large store), and
// with Go's default of 100 the process grows to twice that; 50 keeps it at
// one and a half for a little more collection work (BENCHMARKS.md: peak RSS
// of a 100,000-snapshot walk).
const defaultGOGC = 50

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
	}
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	if err == nil || errors.Is(err, errHelpShown) {
		return ExitOK
	}
	var re *reportedError
	if errors.As(err, &re) {
		return re.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.msg == "" {
			return ExitUsage
		}
		fmt.Fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", ue.cmd, ue.msg, ue.cmd)
	} else {
		fmt.Fprintf(stderr, "pbsfs: %v\n", err)
	}
	return exitCode(err)
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainHelp)
		return &usageError{cmd: "pbsfs"} // the help says it all
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "mount":
		return mountCommand(rest, stdout, stderr)
	case "demo":
		return demoCommand(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && cmd == "help" {
			switch rest[0] {
			case "mount":
				fmt.Fprint(stdout, mountHelp)
				return nil
			case "demo":
				fmt.Fprint(stdout, demoHelp)
				return nil
			case "version", "help":
				fmt.Fprint(stdout, mainHelp)
				return nil
			}
			return &usageError{cmd: "pbsfs", msg: fmt.Sprintf("unknown command %q", rest[0])}
		}
		fmt.Fprint(stdout, mainHelp)
		return nil
	}
	if isMountForm(args) {
		return mountFormCommand(args, stdout, stderr)
	}
	return &usageError{cmd: "pbsfs", msg: fmt.Sprintf("unknown command %q", cmd)}
}

// versionString is "pbsfs VERSION (commit REV[, modified], GOVERSION,
// bazil.org/fuse VERSION)". VERSION is what the build set with -ldflags
// "-X main.version=..." (scripts/build-deb does), else the module version
// "go install pbsfs/cmd/pbsfs@VERSION" records, else "devel"; the commit
// is the one Go's build info records for a build in a git work tree.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "pbsfs " + version
	}
	return "pbsfs " + buildVersion(version, commit, bi)
}

// buildVersion formats the version line from the build info.
func buildVersion(v, rev string, bi *debug.BuildInfo) string {
	if v == "devel" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var parts []string
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if r := settings["vcs.revision"]; r != "" {
		rev = r
	}
	if rev != "" {
		c := "commit " + rev[:min(12, len(rev))]
		if settings["vcs.modified"] == "true" {
			c += ", modified"
		}
		parts = append(parts, c)
	}
	parts = append(parts, bi.GoVersion)
	for _, d := range bi.Deps {
		if d.Path == "bazil.org/fuse" {
			parts = append(parts, d.Path+" "+d.Version)
		}
	}
	return v + " (" + strings.Join(parts, ", ") + ")"
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("pbsfs mount /store /mnt --read-only" works as
// well); "--" ends the flags. A request for help prints help to stdout and
// returns errHelpShown.
func parseArgs(fs *flag.FlagSet, cmd, help string, args []string, stdout io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, help)
			return nil, errHelpShown
		}
		if err != nil {
			return nil, &usageError{cmd: cmd, msg: err.Error()}
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// errHelpShown ends a command successfully after --help.
var errHelpShown = errors.New("help shown")
