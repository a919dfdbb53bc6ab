package main

import (
	"errors"
	"fmt"
)

// Exit codes of pbsfs. They are part of the command-line contract and are
// listed in every --help text; scripts may rely on them.
const (
	// ExitOK: the file system was served and unmounted cleanly, also after
	// Ctrl-C, SIGTERM or an external "fusermount3 -u".
	ExitOK = 0
	// ExitOther: any failure without a more specific code, including the
	// FUSE connection failing while serving.
	ExitOther = 1
	// ExitUsage: bad command line (unknown command or flag, wrong number of
	// arguments, bad flag value).
	ExitUsage = 2
	// ExitDatastore: the datastore is missing, not a directory, not a PBS
	// datastore (no .chunks directory) or cannot be opened.
	ExitDatastore = 10
	// ExitMountPoint: the mountpoint is missing, not a directory, not empty,
	// a dead FUSE mount, or overlaps the datastore.
	ExitMountPoint = 11
	// ExitMount: the FUSE mount itself failed (no /dev/fuse, fusermount3
	// missing or refusing, allow_other not permitted, ...).
	ExitMount = 12
	// ExitLock: the PBS locking scheme could not be determined or the
	// installed PBS version is one pbsfs refuses to write next to.
	ExitLock = 13
	// ExitKey: the --keyfile could not be read or opened (wrong password,
	// not a PBS key file, no way to ask for the password).
	ExitKey = 14
	// ExitPBS: PBS's rules forbid the mount: a maintenance mode that
	// forbids reads (or writes, for a read-write mount), a removable
	// datastore whose device is not mounted, a datastore.cfg that does not
	// parse, or (read-write, PBS installed) a datastore whose PBS name
	// cannot be established.
	ExitPBS = 15
	// ExitS3Auth: the S3 endpoint of an s3:// datastore refused the
	// credentials (access denied, unknown key, bad signature).
	ExitS3Auth = 16
	// ExitS3NotFound: the bucket does not exist, or holds no datastore of
	// that name.
	ExitS3NotFound = 17
	// ExitS3Certificate: the endpoint's TLS certificate was not accepted
	// (not the pinned fingerprint, unknown CA, wrong host name) or the
	// endpoint does not speak the URL's scheme.
	ExitS3Certificate = 18
	// ExitS3Unreachable: the endpoint could not be reached or did not
	// answer within --s3-timeout.
	ExitS3Unreachable = 19
)

// exitError is an error that ends pbsfs with a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitf makes an exitError with a formatted message (%w allowed).
func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// usageError is a command-line mistake: exit code ExitUsage, and the
// message is followed by a hint at --help.
type usageError struct {
	cmd string // "pbsfs mount"
	msg string
}

func (e *usageError) Error() string { return e.msg }

// exitCode is the exit code err calls for.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitOther
}

// exitStatusHelp is the exit-status section of the help texts.
const exitStatusHelp = `Exit status:
  0   served and unmounted cleanly (also after Ctrl-C, SIGTERM or fusermount3 -u)
  1   other error, including a failure of the FUSE connection while serving
  2   usage error
  10  DATASTORE is missing or not a PBS datastore (no .chunks directory)
  11  MOUNTPOINT is missing, not an empty directory, or overlaps DATASTORE
  12  the FUSE mount failed
  13  the PBS locking scheme could not be determined or is not supported
  14  the --keyfile could not be read or opened (wrong password?)
  15  PBS does not let the datastore be used: maintenance mode, removable
      device not mounted, datastore.cfg broken, or its PBS name unknown
  16  s3:// datastore: the endpoint refused the credentials
  17  s3:// datastore: no such bucket, or no such datastore in it
  18  s3:// datastore: the endpoint's certificate was not accepted
  19  s3:// datastore: the endpoint is unreachable or did not answer in time
`
