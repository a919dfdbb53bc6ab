// Command pbsfs mounts a Proxmox Backup Server datastore as a file system in
// which every snapshot is a directory holding its notes (read-write) and its
// manifest (read-only).
//
//	pbsfs mount [OPTION]... DATASTORE MOUNTPOINT
//	pbsfs DATASTORE MOUNTPOINT -o OPTIONS     (as mount(8) runs it)
//	pbsfs demo [OPTION]... [DIR]
//	pbsfs version
//
// The file layout: main.go (command dispatch, flag parsing), mount.go (the
// mount command and serving), mountform.go (the mount(8) form: -o options,
// going to the background once ready), notify.go (systemd's READY=1 and
// STOPPING=1), logdest.go (--log-file, syslog), demo.go (the demo command), checks.go
// (pre-mount checks, datastore.cfg lookup), signals.go (SIGINT/SIGTERM,
// lazy unmount), logging.go, exitcodes.go (the exit codes, part of the
// command-line contract). See `pbsfs --help` and `pbsfs COMMAND --help`.
package main
