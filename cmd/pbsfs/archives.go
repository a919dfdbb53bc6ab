package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"pbsfs/datastore"
	pbsfs "pbsfs/fs"
	"pbsfs/keyfile"
	"pbsfs/manifest"
)

// archivesHelp documents the archive options; it is part of the mount
// help's option list.
const archivesHelp = `      --archives           show each snapshot's archives, read-only (the
                           default): NAME.blob as NAME (decoded),
                           NAME.img.fidx as NAME.img (the disk image),
                           pxar archives (NAME.pxar.didx, or NAME.mpxar.didx
                           with NAME.ppxar.didx) as a directory NAME.pxar/,
                           other NAME.didx as NAME (e.g. catalog.pcat1);
                           every chunk read is verified, and a missing or
                           damaged one fails that read with EIO
      --no-archives        show only notes and manifest.json in snapshots
                           (also --archives=false)
      --keyfile FILE       PBS encryption key file (proxmox-backup-client key
                           create) for encrypted archives, which are
                           unreadable (EACCES) without it; manifest.json then
                           also has a "pbsfs-signature-check" key: valid,
                           invalid, other key or unsigned
      --password-file FILE read the key file's password from the first line
                           of FILE (default: $PBS_ENCRYPTION_PASSWORD, else
                           ask on the terminal)
      --chunk-cache MiB    decoded chunks kept in memory (default 32; 64 for a
                           bucket, whose read-ahead is deeper)
      --pxar-entries N     pxar archive entries the kernel may hold looked
                           up; past N the least recently used archive
                           directories are forgotten and looked up again
                           when needed (default 150000; 0: no bound)
`

// passwordEnv is the variable proxmox-backup-client reads the key
// password from; pbsfs honours it too.
const passwordEnv = "PBS_ENCRYPTION_PASSWORD"

// archiveFlags are the options of archive access.
type archiveFlags struct {
	enabled      bool
	keyfile      string
	passwordFile string
	cacheMiB     int  // --chunk-cache, when cacheSet
	cacheSet     bool // else the datastore's default for its kind
	pxarEntries  int

	// terminal reads a password with the prompt; nil = the process's
	// terminal on stdin, if it is one.
	terminal func(prompt string) ([]byte, error)
	getenv   func(string) (string, bool) // nil = os.LookupEnv
}

func (f *archiveFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "archives", true, "")
	fs.BoolFunc("no-archives", "", func(v string) error {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		f.enabled = !off
		return nil
	})
	fs.StringVar(&f.keyfile, "keyfile", "", "")
	fs.StringVar(&f.passwordFile, "password-file", "", "")
	fs.Func("chunk-cache", "", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		f.cacheMiB, f.cacheSet = n, true
		return nil
	})
	fs.IntVar(&f.pxarEntries, "pxar-entries", pbsfs.DefaultPxarCap, "")
}

// pxarCap is fs's Options.PxarCap for --pxar-entries (0: no bound).
func (f *archiveFlags) pxarCap() int {
	if f.pxarEntries == 0 {
		return -1
	}
	return f.pxarEntries
}

// validate checks what needs no file access.
func (f *archiveFlags) validate(cmd string) error {
	if f.cacheSet && (f.cacheMiB < 0 || f.cacheMiB > 1<<20) {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--chunk-cache: %d is not a size in MiB between 0 and 1048576", f.cacheMiB)}
	}
	if f.pxarEntries < 0 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--pxar-entries: %d is not a number of entries (0: no bound)", f.pxarEntries)}
	}
	if f.passwordFile != "" && f.keyfile == "" {
		return &usageError{cmd: cmd, msg: "--password-file needs --keyfile"}
	}
	return nil
}

// options loads the key (asking for its password if needed) and returns the
// datastore's archive options. Key problems end pbsfs with ExitKey.
func (f *archiveFlags) options(stderr io.Writer, log *slog.Logger) (datastore.ArchiveOptions, error) {
	o := datastore.ArchiveOptions{Enabled: f.enabled}
	switch {
	case !f.cacheSet: // CacheBytes 0: the default for the kind of datastore
	case f.cacheMiB == 0:
		o.CacheBytes = -1 // 0 MiB: no cache
	default:
		o.CacheBytes = int64(f.cacheMiB) << 20
	}
	if f.keyfile == "" {
		return o, nil
	}
	cfg, fp, err := f.loadKey(stderr)
	if err != nil {
		return o, exitf(ExitKey, "%w", err)
	}
	log.Info("encryption key loaded", "keyfile", f.keyfile, "fingerprint", fp)
	o.Crypt = cfg
	return o, nil
}

func (f *archiveFlags) loadKey(stderr io.Writer) (*manifest.CryptConfig, string, error) {
	kc, err := keyfile.Load(f.keyfile)
	if err != nil {
		return nil, "", err
	}
	var password []byte
	if kc.Encrypted() {
		if password, err = f.password(stderr); err != nil {
			return nil, "", fmt.Errorf("key file %s: %w", f.keyfile, err)
		}
	}
	key, fp, err := kc.Decrypt(password)
	clear(password)
	if err != nil {
		return nil, "", fmt.Errorf("key file %s: %w", f.keyfile, err)
	}
	cfg, err := manifest.NewCryptConfig(key)
	clear(key)
	if err != nil {
		return nil, "", fmt.Errorf("key file %s: %w", f.keyfile, err)
	}
	return cfg, fp, nil
}

// password returns the key file's password: --password-file, else
// $PBS_ENCRYPTION_PASSWORD (its first line, as PBS reads it), else asked on
// the terminal.
func (f *archiveFlags) password(stderr io.Writer) ([]byte, error) {
	if f.passwordFile != "" {
		return keyfile.ReadPasswordFile(f.passwordFile)
	}
	getenv := f.getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	if v, ok := getenv(passwordEnv); ok {
		line, _, _ := strings.Cut(v, "\n")
		return []byte(strings.TrimSuffix(line, "\r")), nil
	}
	ask := f.terminal
	if ask == nil {
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return nil, errors.New("the key is password protected: give --password-file, set " + passwordEnv + " or run pbsfs on a terminal")
		}
		ask = func(prompt string) ([]byte, error) {
			fmt.Fprint(stderr, prompt)
			defer fmt.Fprintln(stderr)
			return term.ReadPassword(fd)
		}
	}
	pw, err := ask("Encryption Key Password: ")
	if err != nil {
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	return pw, nil
}
