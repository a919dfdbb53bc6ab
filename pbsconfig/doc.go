// Package pbsconfig reads Proxmox Backup Server's datastore configuration,
// /etc/proxmox-backup/datastore.cfg, with the syntax rules of PBS's own
// section-config parser (pbs-format.md §10.1), and interprets the
// properties that matter to a process working beside PBS: path,
// maintenance-mode (§10.2), backing-device (§10.5) and backend (§10.4).
//
// It knows files, not datastores: it opens nothing below a datastore and
// takes no lock except, with LockConfig, PBS's config lock
// /etc/proxmox-backup/.datastore.lck.
//
// Strictness follows PBS where PBS is strict about the file as a whole
// (headers, indentation, keys without values, duplicate keys, a missing
// path, comments — there is no comment syntax — all make the whole file
// unparseable, as they do for PBS, which then serves no datastore of the
// host) and is lenient where a newer PBS may write what this package does
// not know (unknown property names are kept, not refused). A
// maintenance-mode or backend value that does not parse does not fail the
// file: it is recorded on its section and fails closed (an unknown mode
// counts as offline, an unknown backend as not local).
package pbsconfig
