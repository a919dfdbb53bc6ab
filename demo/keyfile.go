package demo

import (
	"errors"
	"fmt"
	"os"
	"time"

	"pbsfs/keyfile"
)

// keyCreated is the creation time written into the demo key file, so that
// the file is the same on every call.
var keyCreated = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// WriteKeyFile writes DemoKey as a PBS key file to path, unprotected (kdf
// null, as `proxmox-backup-client key create --kdf none` writes it), with
// mode 0600, so that `pbsfs mount --keyfile path` can read the sample
// store's encrypted snapshots without asking for a password. An existing
// file is never overwritten.
func WriteKeyFile(path string) error {
	kc, err := keyfile.New(DemoKey(), nil, nil, keyCreated)
	if err != nil {
		return fmt.Errorf("demo: key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("demo: key file: %w", err)
	}
	_, werr := f.Write(kc.Marshal())
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("demo: key file %s: %w", path, err)
	}
	return nil
}
