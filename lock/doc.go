// Package lock implements the three locking schemes Proxmox Backup Server
// (PBS) has used for backup groups, snapshots and snapshot manifests, so that
// pbsfs takes the same locks, at the same paths and with the same semantics,
// as the PBS daemons running on the same host (pbs-format.md §6).
//
// Schemes:
//
//   - [Legacy] (PBS 0.9.2 – 1.0.5; Detect also maps 0.9.1 here): groups and
//     snapshots are locked with flock(2) on their directory inside the
//     datastore; the manifest lock is the file ".index.json.lck" inside the
//     snapshot directory.
//   - [Dirs] (PBS 2.2 – 3.3.4, and 3.3.5+ while /run/proxmox-backup/old-locking
//     exists): directory flocks as above; the manifest lock file is
//     <Dir>/<store>/[ns/<a>/ns/<b>/]<type>/<id>/<time>/<time>.index.json.lck
//     (BackupDir::manifest_lock_path, PBS 3.2.4).
//   - [Run] (PBS 3.3.5+ after a reboot): every lock is an empty file below
//     <Dir>/<store>/[<ns joined by ":">/], named by the systemd path escaping
//     of the object's path relative to its namespace (long names go to
//     "hashed/"); after flock the lock is verified with a double stat so that
//     lock files may be deleted while held.
//
// Lock files are created atomically (temporary file, then renameat2 with
// RENAME_NOREPLACE or link) with mode 0660 and the owner from [Config], so a
// PBS daemon running as user "backup" can always open them. Group and
// snapshot locks never block ([ErrWouldBlock]); the manifest lock waits up to
// a timeout ([ErrTimeout]). All locks are flock(2) locks, owned by the open
// file description: two Locks taken in the same process conflict exactly like
// locks taken by two processes.
//
// [Detect] chooses the scheme from the installed proxmox-backup-server
// package version and the old-locking flag file (§6.7).
package lock
