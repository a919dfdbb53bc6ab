package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/term"

	pbsfs "pbsfs/fs"
	"pbsfs/keyfile"
	"pbsfs/manifest"
)

func TestArchiveFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		msg     string
		enabled bool
	}{
		{[]string{"--chunk-cache", "-1"}, "--chunk-cache", true},
		{[]string{"--pxar-entries", "-5"}, "--pxar-entries", true},
		{[]string{"--pxar-entries", "0"}, "", true},
		{[]string{"--password-file", "/x"}, "--password-file needs --keyfile", true},
		{[]string{"--archives", "--chunk-cache", "0"}, "", true},
		{[]string{"--archives=false"}, "", false},
		{[]string{"--no-archives"}, "", false},
		{[]string{"--no-archives=false"}, "", true},
		{[]string{"--no-archives", "--archives"}, "", true},
		{[]string{"--archives", "--no-archives"}, "", false},
	} {
		var f archiveFlags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		err := f.validate("pbsfs mount")
		if (err == nil) != (c.msg == "") || (err != nil && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("%q: %v, want %q", c.args, err, c.msg)
		}
		if f.enabled != c.enabled {
			t.Errorf("%q: archives enabled = %v, want %v", c.args, f.enabled, c.enabled)
		}
	}
	var f archiveFlags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f.register(fs)
	fs.Parse(nil)
	o, err := f.options(io.Discard, slog.New(slog.DiscardHandler))
	// No --chunk-cache: 0, the datastore's default for its kind.
	if err != nil || !o.Enabled || o.Crypt != nil || o.CacheBytes != 0 {
		t.Errorf("defaults: %+v %v", o, err)
	}
	for _, c := range []struct {
		arg  string
		want int64
	}{{"0", -1}, {"16", 16 << 20}} {
		var f archiveFlags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse([]string{"--chunk-cache", c.arg}); err != nil {
			t.Fatal(err)
		}
		if o, _ := f.options(io.Discard, slog.New(slog.DiscardHandler)); o.CacheBytes != c.want {
			t.Errorf("--chunk-cache %s: CacheBytes %d, want %d", c.arg, o.CacheBytes, c.want)
		}
	}
	// --pxar-entries: the default is fs's, 0 is no bound (fs: negative,
	// since its 0 means the default).
	for _, c := range []struct{ flag, want int }{{pbsfs.DefaultPxarCap, pbsfs.DefaultPxarCap}, {0, -1}, {5000, 5000}} {
		if c.flag == pbsfs.DefaultPxarCap && f.pxarEntries != c.flag {
			t.Errorf("--pxar-entries default %d, want %d", f.pxarEntries, c.flag)
		}
		f.pxarEntries = c.flag
		if got := f.pxarCap(); got != c.want {
			t.Errorf("--pxar-entries %d: fs cap %d, want %d", c.flag, got, c.want)
		}
	}
}

// writeKeyFile writes a password-protected key file (cheap scrypt
// parameters) and returns its path and the key's fingerprint.
func writeKeyFile(t *testing.T, password string) (string, string) {
	t.Helper()
	key := bytes.Repeat([]byte{0x17}, 32)
	kc, err := keyfile.New(key, []byte(password), &keyfile.KDF{Name: keyfile.Scrypt, N: 1024, R: 8, P: 1, Salt: []byte("salt")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(p, kc.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, manifest.Fingerprint(key)
}

func TestArchiveKeyLoading(t *testing.T) {
	keyPath, fp := writeKeyFile(t, "s3cret-pass")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret-pass\n"), 0o600)
	wrongFile := filepath.Join(dir, "wrong")
	os.WriteFile(wrongFile, []byte("wrong-pass\n"), 0o600)
	noEnv := func(string) (string, bool) { return "", false }
	noTerm := func(string) ([]byte, error) { return nil, errors.New("no terminal in this test") }
	log := slog.New(slog.DiscardHandler)

	for _, c := range []struct {
		name string
		f    archiveFlags
		ok   bool
		msg  string
	}{
		{"password file", archiveFlags{keyfile: keyPath, passwordFile: pwFile, getenv: noEnv, terminal: noTerm}, true, ""},
		{"environment", archiveFlags{keyfile: keyPath, getenv: func(k string) (string, bool) {
			return "s3cret-pass\nignored", k == passwordEnv
		}, terminal: noTerm}, true, ""},
		{"terminal", archiveFlags{keyfile: keyPath, getenv: noEnv, terminal: func(p string) ([]byte, error) {
			if p != "Encryption Key Password: " {
				t.Errorf("prompt %q", p)
			}
			return []byte("s3cret-pass"), nil
		}}, true, ""},
		{"wrong password", archiveFlags{keyfile: keyPath, passwordFile: wrongFile, getenv: noEnv}, false, "wrong password"},
		{"no way to ask", archiveFlags{keyfile: keyPath, getenv: noEnv, terminal: noTerm}, false, "no terminal"},
		{"missing key file", archiveFlags{keyfile: filepath.Join(dir, "nope")}, false, "no such file"},
		{"not a key file", archiveFlags{keyfile: pwFile}, false, "not a valid PBS key file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := c.f.options(io.Discard, log)
			if c.ok {
				if err != nil || o.Crypt == nil || o.Crypt.Fingerprint() != fp {
					t.Fatalf("options: %v", err)
				}
				return
			}
			if err == nil || exitCode(err) != ExitKey || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err %v (exit %d), want exit %d with %q", err, exitCode(err), ExitKey, c.msg)
			}
		})
	}
}

// Without a terminal on stdin and no other source, pbsfs says how to give
// the password (the test binary's stdin is not a terminal).
func TestArchivePasswordNoTerminal(t *testing.T) {
	if term.IsTerminal(int(os.Stdin.Fd())) {
		t.Skip("stdin is a terminal")
	}
	keyPath, _ := writeKeyFile(t, "s3cret-pass")
	f := archiveFlags{keyfile: keyPath, getenv: func(string) (string, bool) { return "", false }}
	_, err := f.options(io.Discard, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--password-file") {
		t.Errorf("%v", err)
	}
}

func TestMountHelpArchives(t *testing.T) {
	code, out, _ := runCLI("mount", "--help")
	for _, want := range []string{"--archives", "--no-archives", "--keyfile FILE", "--password-file FILE", "--chunk-cache MiB", "14  the --keyfile"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("mount --help lacks %q", want)
		}
	}
	code, _, errs := runCLI("mount", "--password-file", "/x", "/a", "/b")
	if code != ExitUsage || !strings.Contains(errs, "--keyfile") {
		t.Errorf("exit %d: %s", code, errs)
	}
}
