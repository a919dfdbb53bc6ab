// Package fs is the FUSE face of a Proxmox Backup Server datastore: thin
// bazil.org/fuse glue over package datastore, which holds every PBS
// semantic (locks, manifest updates, removal rules).
//
// The mounted tree mirrors the datastore's own layout,
//
//	[ns/<a>/ns/<b>/]<type>/<id>/<time>/
//
// showing only what PBS users care about:
//
//	<namespace dir>/            vm/ ct/ host/ (the ones present) and ns/ (if child namespaces exist)
//	  ns/<name>/                child namespaces
//	  <type>/<id>/              a backup group
//	    notes                   group notes (read-write)
//	    owner                   the group's owner file (read-only)
//	    <time>/                 a snapshot
//	      notes                 the snapshot's notes, unprotected.notes of its manifest (read-write)
//	      manifest.json         the manifest as pretty JSON (read-only)
//	      <archive>             each archive decoded: qemu-server.conf, drive-scsi0.img, catalog.pcat1 ... (read-only)
//	      <name>.pxar/          each pxar archive (v1 or split) as a directory tree (read-only)
//
// Archives are shown when the datastore was opened with archives enabled
// (pbsfs mount does so unless --no-archives). Everything else in the
// datastore (.chunks, .lock, .gc-status, the raw archive files) is hidden. Removing a snapshot directory (rmdir) deletes the snapshot the way
// PBS's "forget" does; removing an empty group directory deletes the group.
//
// Design decisions (kernel cache lifetimes, inode numbers, when notes are
// committed, the errno table) are recorded in README.md next to this file.
//
// Usage:
//
//	filesys := fs.New(store, fs.Options{Logger: log})
//	conn, _ := fuse.Mount(dir, fs.MountOptions(false, false)...)
//	srv := fusefs.New(conn, nil)
//	filesys.SetServer(srv)     // enables kernel cache invalidation
//	go filesys.Revalidate(ctx) // shows what PBS changes (revalidate.go)
//	err := srv.Serve(filesys)
package fs
