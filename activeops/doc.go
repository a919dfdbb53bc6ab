// Package activeops registers a process's operations on a datastore in
// Proxmox Backup Server's active-operations file, the way PBS's own
// daemons do (pbs-format.md §10.3), so that PBS sees them: its GUI counts
// them, an unmount or s3-refresh waits for them, a datastore removal
// refuses to go ahead under them.
//
// The file /run/proxmox-backup/active-operations/<store> is one line of
// compact JSON, an array of {"pid","starttime","active_operations":
// {"read","write"}}; every update holds flock(LOCK_EX) on <store>.lock,
// reads the file, drops entries of dead processes, adds to or creates the
// own entry and replaces the file by rename. This package follows the
// derived protocol of §10.3.5: a file that does not parse is left alone
// and the registration refused (PBS fails every lookup of the store on such
// a file; rewriting it would hide what broke it); the own entry is removed
// when both its counts are back to zero; and for PBS older than 4.0.21
// (Options.LegacyTracking) a new own entry is only added when a live entry
// of another process is already there, so that a PBS daemon registering
// next is not left uncounted by PBS's old code.
package activeops
