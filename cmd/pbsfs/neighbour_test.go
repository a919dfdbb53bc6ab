package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"pbsfs/demo"
	"strings"
	"syscall"
	"testing"

	"pbsfs/datastore"
	"pbsfs/pbsconfig"
)

// pbsHostFixture is a scratch PBS configuration directory and a datastore.
type pbsHostFixture struct {
	dir, cfgDir, store, mnt string
}

func newPBSHostFixture(t *testing.T) *pbsHostFixture {
	t.Helper()
	dir := t.TempDir()
	f := &pbsHostFixture{dir: dir, cfgDir: filepath.Join(dir, "etc"), store: filepath.Join(dir, "disk", "pbs"), mnt: filepath.Join(dir, "mnt")}
	mkdirs(t, f.cfgDir, f.mnt)
	if err := datastore.Create(f.store, datastore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *pbsHostFixture) config(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.cfgDir, pbsconfig.DatastoreFile), []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// open runs openStore as `pbsfs mount` would with these flags, PBS
// installed in version v ("" = not installed).
func (f *pbsHostFixture) open(t *testing.T, v, store string, readOnly bool) (*datastore.Store, error) {
	t.Helper()
	o := mountOptions{
		store: f.store, mountpoint: f.mnt, readOnly: readOnly, storeName: store,
		scheme: "run", lockDir: filepath.Join(f.dir, "run", "locks"), cacheSize: 16,
		pbsConfigDir: f.cfgDir,
		pbsVersion:   func() (string, bool, error) { return v, v != "", nil },
		lockOwner:    func() (int, int) { return -1, -1 },
		stderr:       io.Discard,
	}
	st, _, err := o.openStore(slog.New(slog.DiscardHandler))
	if st != nil {
		t.Cleanup(func() { st.Close() })
	}
	return st, err
}

func TestPBSNameRule(t *testing.T) {
	f := newPBSHostFixture(t)
	alias := filepath.Join(f.dir, "alias")
	os.Symlink(f.store, alias)
	other := filepath.Join(f.dir, "other")
	mkdirs(t, other)
	const pbs = "4.1.2-1"

	type tc struct {
		name, cfg, version, store string
		readOnly                  bool
		wantErr                   string // "" = mounts
		wantName                  string
		wantPBS                   bool // the store follows PBS's rules
	}
	for _, c := range []tc{
		{name: "found by device and inode through a symlink", cfg: "datastore: main\n\tpath " + alias + "\n", version: pbs, wantName: "main", wantPBS: true},
		{name: "PBS installed, not listed, rw", cfg: "datastore: main\n\tpath " + other + "\n", version: pbs, wantErr: "lists no datastore at"},
		{name: "PBS installed, no datastore.cfg, rw", version: pbs, wantErr: "does not exist"},
		{name: "PBS installed, not listed, read-only", cfg: "datastore: main\n\tpath " + other + "\n", version: pbs, readOnly: true, wantName: "pbs"},
		{name: "no PBS: directory name", cfg: "datastore: main\n\tpath " + other + "\n", wantName: "pbs"},
		{name: "--store naming this directory", cfg: "datastore: main\n\tpath " + alias + "\n", version: pbs, store: "main", wantName: "main", wantPBS: true},
		{name: "--store naming another directory", cfg: "datastore: main\n\tpath " + other + "\n", version: pbs, store: "main", wantErr: "which is not"},
		{name: "--store unknown to PBS", cfg: "datastore: main\n\tpath " + other + "\n", version: pbs, store: "elsewhere", wantErr: "has no datastore"},
		{name: "--store without PBS", store: "given", wantName: "given"},
		{name: "two sections, rw", cfg: "datastore: one\n\tpath " + f.store + "\n\ndatastore: two\n\tpath " + alias + "\n", version: pbs, wantErr: "give the one to use with --store"},
		{name: "unparsable datastore.cfg, rw", cfg: "# comment\ndatastore: main\n\tpath " + f.store + "\n", version: pbs, wantErr: "line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(filepath.Join(f.cfgDir, pbsconfig.DatastoreFile))
			if c.cfg != "" {
				f.config(t, c.cfg)
			}
			st, err := f.open(t, c.version, c.store, c.readOnly)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || exitCode(err) != ExitPBS {
					t.Fatalf("got %v (exit %d), want %q and exit %d", err, exitCode(err), c.wantErr, ExitPBS)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Locker().Config().Store; got != c.wantName {
				t.Errorf("name %q, want %q", got, c.wantName)
			}
			if got := st.Section() != nil; got != c.wantPBS {
				t.Errorf("follows PBS: %v, want %v", got, c.wantPBS)
			}
		})
	}
}

func TestPBSRefuseMount(t *testing.T) {
	f := newPBSHostFixture(t)
	const pbs = "4.1.2-1"
	for _, c := range []struct {
		mode     string
		readOnly bool
		wantErr  string
	}{
		{"offline,message=disk swap", false, "offline maintenance mode: disk swap"},
		{"offline", true, "offline maintenance mode"},
		{"unmount", true, "being unmounted"},
		{"s3-refresh", true, "S3 refresh"},
		{"delete", true, "being deleted"},
		{"holiday", true, "counts as offline"},
		{"read-only", false, "mount it with --read-only"},
		{"read-only", true, ""},
		{"", false, ""},
	} {
		cfg := "datastore: main\n\tpath " + f.store + "\n"
		if c.mode != "" {
			cfg += "\tmaintenance-mode " + c.mode + "\n"
		}
		f.config(t, cfg)
		_, err := f.open(t, pbs, "", c.readOnly)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%q (read-only %v): %v", c.mode, c.readOnly, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || exitCode(err) != ExitPBS {
			t.Errorf("%q (read-only %v): got %v (exit %d), want %q and exit %d", c.mode, c.readOnly, err, exitCode(err), c.wantErr, ExitPBS)
		}
	}
}

func TestPBSOptions(t *testing.T) {
	o := mountOptions{lockDir: "/run/proxmox-backup/locks", pbsConfigDir: "/etc/proxmox-backup"}
	sec := &pbsconfig.Datastore{Name: "store1", Path: "/srv/store1"}
	if po := o.pbsOptions(pbsSide{name: "x"}, -1, -1); po != nil {
		t.Errorf("a datastore PBS does not know follows PBS's rules: %+v", po)
	}
	for v, legacy := range map[string]bool{"4.0.20-1": true, "3.4.2-1": true, "4.0.21-1": false, "4.1.2-1": false} {
		po := o.pbsOptions(pbsSide{name: "store1", section: sec, installed: true, version: v}, 34, 34)
		if po.ActiveOps.LegacyTracking != legacy || po.ActiveOps.Dir != "/run/proxmox-backup/active-operations" ||
			po.Name != "store1" || po.ConfigDir != "/etc/proxmox-backup" || po.ActiveOps.UID != 34 {
			t.Errorf("PBS %s: %+v", v, po)
		}
	}
}

// TestMountBesidePBS runs the real command against a scratch PBS
// configuration: refused in offline mode (exit 15, PBS's text), then
// served (directory given by $PBSFS_PBS_CONFIG_DIR), following a switch to
// read-only while mounted and registering in the active-operations file
// beside --lock-dir.
func TestMountBesidePBS(t *testing.T) {
	needFUSE(t)
	store, mnt, locks := newStore(t)
	cfgDir := filepath.Join(t.TempDir(), "etc")
	mkdirs(t, cfgDir)
	write := func(extra string) {
		tmp := filepath.Join(cfgDir, ".tmp")
		os.WriteFile(tmp, []byte("datastore: demo\n\tpath "+store+"\n"+extra), 0o640)
		if err := os.Rename(tmp, filepath.Join(cfgDir, pbsconfig.DatastoreFile)); err != nil {
			t.Fatal(err)
		}
	}
	write("\tmaintenance-mode offline,message=disk swap\n")
	code, _, errs := runCLI("mount", "--pbs-config-dir", cfgDir, "--lock-scheme", "run", "--lock-dir", locks, store, mnt)
	if code != ExitPBS || !strings.Contains(errs, "offline maintenance mode: disk swap") {
		t.Fatalf("offline: exit %d %q", code, errs)
	}

	write("")
	t.Setenv(pbsConfigDirEnv, cfgDir)
	p := startPBSFS(t, "mount", "-v", "--recheck", "100ms", "--lock-scheme", "run", "--lock-dir", locks, store, mnt)
	p.waitServing()
	notes := filepath.Join(mnt, demo.SampleVM, "notes")
	if out, err := shell(t, "echo checked >> "+notes+" && cat "+notes); err != nil || !strings.Contains(out, "checked") {
		t.Fatalf("notes: %v %q", err, out)
	}
	ao := filepath.Join(filepath.Dir(locks), "active-operations", "demo")
	waitFor(t, "idle: no entry left", func() bool {
		data, err := os.ReadFile(ao)
		return err == nil && string(data) == "[]"
	})
	write("\tmaintenance-mode read-only,message=audit\n")
	if out, err := shell(t, "echo more >> "+notes); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("save in read-only mode: %v %q", err, out)
	}
	waitFor(t, "the admin's message in the log", func() bool { return strings.Contains(p.stderr.String(), "read-only maintenance mode: audit") })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != ExitOK {
		t.Errorf("exit %d\n%s", code, p.stderr.String())
	}
}
