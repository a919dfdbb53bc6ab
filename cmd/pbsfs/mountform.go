package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The mount(8) form. An fstab line or "mount -t fuse.pbsfs SOURCE DIR -o
// OPTIONS" makes mount(8) run /sbin/mount.fuse3, which strips the options
// only it and mount(8) act on (nofail, _netdev, noauto, user, setuid=, ...)
// and runs
//
//	pbsfs SOURCE DIR -o OPTIONS
//
// found on the default PATH (mount(8) clears the caller's). In this form
// every pbsfs mount flag is an option (--keyfile FILE is keyfile=FILE,
// --read-only is ro, --allow-other is allow_other: "_" and "-" are the
// same), mount(8)'s generic options are accepted, and pbsfs goes to the
// background once the mount is ready, so that mount(8) returns with a
// working mountpoint or with pbsfs's reason and exit status.

// mountFormCmd names the form in messages.
const mountFormCmd = "pbsfs"

// defaultPath is the PATH pbsfs runs with when mount(8) gave it none: the
// one the shell mount.fuse3 runs it from searches.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// envDaemon marks the background child; its value is the number of the
// file descriptor to report readiness on.
const envDaemon = "PBSFS_DAEMON_FD"

// isMountForm reports whether args are in the mount(8) form: two
// positional arguments first, the first not a command.
func isMountForm(args []string) bool {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") || strings.HasPrefix(args[1], "-") {
		return false
	}
	switch args[0] {
	case "mount", "demo", "version", "help":
		return false
	}
	return true
}

// mountFormCommand mounts as mount(8) asks, in the background unless -f.
func mountFormCommand(args []string, stdout, stderr io.Writer) error {
	if os.Getenv("PATH") == "" {
		// mount(8) runs its helpers without PATH; pbsfs runs fusermount3.
		os.Setenv("PATH", defaultPath)
	}
	o := mountOptions{stderr: stderr, stdout: stdout}
	fs := mountFlags(mountFormCmd, &o)
	foreground, err := parseMountForm(fs, &o, args)
	if err != nil {
		return err
	}
	if err := o.validate(mountFormCmd); err != nil {
		return err
	}
	if foreground {
		return serve(o)
	}
	if fd := os.Getenv(envDaemon); fd != "" {
		os.Unsetenv(envDaemon)
		var n int
		if _, err := fmt.Sscan(fd, &n); err != nil || n < 3 {
			return exitf(ExitOther, "bad %s=%q", envDaemon, fd)
		}
		o.background = os.NewFile(uintptr(n), "readiness pipe")
		return serve(o)
	}
	return startBackground(args, stderr)
}

// parseMountForm reads "SOURCE MOUNTPOINT [-o OPTIONS]... [-f]" into fs
// and o. -f keeps pbsfs in the foreground (for trying an fstab line out);
// -n, -s and -v, which mount(8) may give any helper, change nothing.
func parseMountForm(fs *flag.FlagSet, o *mountOptions, args []string) (foreground bool, err error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o":
			if i+1 == len(args) {
				return false, &usageError{cmd: mountFormCmd, msg: "-o needs a list of options"}
			}
			i++
			if err := applyMountOptions(fs, args[i]); err != nil {
				return false, err
			}
		case strings.HasPrefix(a, "-o"):
			if err := applyMountOptions(fs, a[2:]); err != nil {
				return false, err
			}
		case a == "-f":
			foreground = true
		case a == "-n" || a == "-s" || a == "-v":
		case strings.HasPrefix(a, "-"):
			return false, &usageError{cmd: mountFormCmd, msg: fmt.Sprintf("unknown argument %q: mount options go in -o OPTIONS", a)}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return false, &usageError{cmd: mountFormCmd, msg: fmt.Sprintf("want SOURCE MOUNTPOINT [-o OPTIONS], got %q", pos)}
	}
	if strings.HasPrefix(pos[1], "/dev/fd/") {
		// What mount.fuse3 passes with drop_privileges: a FUSE device it
		// opened and mounted itself. bazil.org/fuse cannot serve that.
		return false, &usageError{cmd: mountFormCmd, msg: "the mount option drop_privileges is not supported by pbsfs"}
	}
	o.store, o.mountpoint = pos[0], pos[1]
	return foreground, nil
}

// genericOptions are mount(8)'s file-system independent options pbsfs
// accepts and ignores: mount(8), systemd and mount.fuse3 act on the ones
// that concern them (and mount.fuse3 adds dev,suid when root mounts). A
// pbsfs mount is always nodev,nosuid, and serves no device, set-user-ID or
// executable files, so the rest has nothing to change.
var genericOptions = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "user": true, "nouser": true, "users": true,
	"owner": true, "group": true, "_netdev": true, "nofail": true, "silent": true, "loud": true,
	"dev": true, "nodev": true, "suid": true, "nosuid": true, "exec": true, "noexec": true,
	"atime": true, "noatime": true, "diratime": true, "nodiratime": true, "relatime": true,
	"norelatime": true, "strictatime": true, "nostrictatime": true, "lazytime": true,
	"nolazytime": true, "sync": true, "async": true, "dirsync": true, "iversion": true,
	"noiversion": true, "mand": true, "nomand": true, "nosymfollow": true,
}

// applyMountOptions sets the flags a comma-separated option list names.
func applyMountOptions(fs *flag.FlagSet, list string) error {
	bad := func(format string, args ...any) error {
		return &usageError{cmd: mountFormCmd, msg: fmt.Sprintf(format, args...)}
	}
	for opt := range strings.SplitSeq(list, ",") {
		key, val, hasVal := strings.Cut(opt, "=")
		switch {
		case opt == "":
			continue
		case key == "ro" || key == "rw":
			if hasVal {
				return bad("mount option %q takes no value", opt)
			}
			fs.Set("read-only", fmt.Sprint(key == "ro"))
			continue
		case genericOptions[key] && !hasVal,
			strings.HasPrefix(key, "x-"), strings.HasPrefix(key, "X-"), key == "comment":
			continue
		case key == "remount":
			return bad("a pbsfs mount cannot be remounted: umount it and mount it again")
		}
		name := strings.ReplaceAll(key, "_", "-")
		f := fs.Lookup(name)
		if f == nil || len(name) < 2 {
			return bad("unknown mount option %q (see man pbsfs: every 'pbsfs mount' flag NAME is an option NAME or NAME=VALUE)", key)
		}
		if !hasVal {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				return bad("mount option %s needs a value: %s=VALUE", key, key)
			}
			val = "true"
		}
		if err := fs.Set(name, val); err != nil {
			return bad("mount option %s: %v", opt, err)
		}
	}
	return nil
}

// startBackground runs pbsfs again with the same arguments as a child in
// a session of its own, and waits until the child reports the mount ready
// (one byte on a pipe) or exits. The child writes its errors on the
// stderr it inherits (and may ask for a key password on the inherited
// stdin) until it is ready; then it lets go of both.
func startBackground(args []string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return exitf(ExitOther, "cannot find the pbsfs executable to run in the background: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return exitf(ExitOther, "%w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envDaemon+"=3")
	cmd.Stdin = os.Stdin
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Ctrl-C (or mount(8)'s caller giving up) while the child starts, asks
	// for a password or waits for a file ends the child too: in a session
	// of its own, it would otherwise go on alone.
	// Caught from before the start, so that none is missed.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return exitf(ExitOther, "starting pbsfs in the background: %w", err)
	}
	ready := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := r.Read(b[:])
		ready <- n == 1
	}()
	select {
	case ok := <-ready:
		if ok {
			cmd.Process.Release()
			return nil // serving; the child goes on alone
		}
	case sig := <-sigs:
		cmd.Process.Kill()
		cmd.Wait()
		return exitf(ExitOther, "%v received before the mount was ready: the background pbsfs was stopped", sig)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return &reportedError{code: ee.ExitCode()} // the child said why
	}
	if err != nil {
		return exitf(ExitOther, "the background pbsfs died before the mount was ready: %v", err)
	}
	return exitf(ExitOther, "the background pbsfs exited before the mount was ready")
}

// reportedError ends pbsfs with code; the message was written already.
type reportedError struct{ code int }

func (e *reportedError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// detach is the background child's last step of starting: it tells the
// waiting parent the mount is ready and lets go of the caller's stdin,
// stdout, stderr and working directory, so that nothing mount(8) or a
// script waits on stays open.
func detach(ready *os.File) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	for fd := range 3 {
		if err := unix.Dup2(int(null.Fd()), fd); err != nil {
			return fmt.Errorf("redirecting fd %d to %s: %w", fd, os.DevNull, err)
		}
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	defer ready.Close()
	if _, err := ready.Write([]byte{'R'}); err != nil {
		return fmt.Errorf("telling the parent: %w", err)
	}
	return nil
}
