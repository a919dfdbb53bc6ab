// Package integration holds pbsfs's real-mount test suite; it has no
// non-test code.
//
// TestMain builds cmd/pbsfs once per `go test` run (with -race when the
// tests themselves are built with -race) into a temporary directory. Each
// test writes a datastore (demo.Sample or the datastore package's writer),
// starts `pbsfs mount --lock-scheme run --lock-dir <tmp> --store test STORE
// MNT` as a subprocess, waits until the mountpoint shows the store, and
// works on the mount only through os functions and shell commands (the
// file system runs in another process, so faulting into it cannot
// deadlock the test). Expectations are computed independently from the
// datastore on disk: index.json.blob is decoded with manifest.Load, owner
// and group notes are read as files.
//
// The tests need /dev/fuse and fusermount3. Without them they are skipped,
// except when the environment variable CI=true is set: then they fail, so a
// CI machine without FUSE cannot pass silently.
package integration
