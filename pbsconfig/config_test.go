package pbsconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// example is §10.7's datastore.cfg, as PBS ≥ 3.2 writes it.
const example = "datastore: store1\n" +
	"\tcomment Primary backup storage\n" +
	"\tgc-schedule daily\n" +
	"\tpath /mnt/datastore/store1\n" +
	"\ttuning chunk-order=inode,sync-level=filesystem\n" +
	"\n" +
	"datastore: archive\n" +
	"\tmaintenance-mode read-only,message=disk replacement until Friday\n" +
	"\tpath /srv/pbs/archive\n" +
	"\n" +
	"datastore: s3-offsite\n" +
	"\tbackend bucket=pbs-offsite,client=wasabi-eu,max-cache-size=128GiB,type=s3\n" +
	"\tpath /mnt/datastore/s3-offsite-cache\n" +
	"\n" +
	"datastore: usb-weekly\n" +
	"\tbacking-device 6f2b7c1e-3a9d-4c55-8e0f-1b2a3c4d5e6f\n" +
	"\tgc-on-unmount true\n" +
	"\tmaintenance-mode unmount\n" +
	"\tpath pbs/usb-weekly"

func TestParseExample(t *testing.T) {
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Datastores) != 4 {
		t.Fatalf("got %d sections", len(c.Datastores))
	}
	s1 := c.Lookup("store1")
	if s1.Path != "/mnt/datastore/store1" || s1.Maintenance.Raw != "" || !s1.Backend.Local() || s1.Removable() {
		t.Errorf("store1: %+v", s1)
	}
	a := c.Lookup("archive")
	if a.Maintenance.Type != ModeReadOnly || a.Maintenance.Message != "disk replacement until Friday" {
		t.Errorf("archive: %+v", a.Maintenance)
	}
	if err := a.Maintenance.Check(Read); err != nil {
		t.Errorf("read-only refuses reads: %v", err)
	}
	if err := a.Maintenance.Check(Write); !errors.Is(err, ErrMaintenance) ||
		!strings.Contains(err.Error(), "read-only maintenance mode: disk replacement until Friday") {
		t.Errorf("read-only write check: %v", err)
	}
	s3 := c.Lookup("s3-offsite")
	if s3.Backend.Local() || s3.Backend.Type != "s3" || s3.Backend.Bucket != "pbs-offsite" {
		t.Errorf("s3: %+v", s3.Backend)
	}
	u := c.Lookup("usb-weekly")
	if !u.Removable() || u.Dir() != "/mnt/datastore/usb-weekly" || u.Maintenance.AllowsReads() {
		t.Errorf("usb-weekly: %+v dir %s", u, u.Dir())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, cfg, want string }{
		{"comment outside", "# hi\ndatastore: abc\n\tpath /x\n", "line 1 - syntax error (expected header)"},
		{"comment inside", "datastore: abc\n\tpath /x\n# hi\n", "line 3 - syntax error (expected section properties)"},
		{"indented comment", "datastore: abc\n\tpath /x\n\t# hi there\n", "unknown property '#'"},
		{"no value", "datastore: abc\n\tpath /x\n\tcomment\n", "property 'comment' has no value"},
		{"duplicate", "datastore: abc\n\tpath /x\n\tpath /y\n", "duplicate property 'path'"},
		{"no path", "datastore: abc\n\tcomment x\n", "property 'path' is missing"},
		{"indented header", " datastore: abc\n\tpath /x\n", "expected header"},
		{"bad name", "datastore: a\n\tpath /x\n", "invalid datastore name"},
		{"other type", "remote: abc\n\tpath /x\n", "unknown section type"},
		{"dup section", "datastore: abc\n\tpath /x\n\ndatastore: abc\n\tpath /y\n", "duplicate datastore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseLenient(t *testing.T) {
	// Spaces for indentation, no blank after the colon, an unknown newer
	// property, whitespace-only lines between sections, no final newline.
	c, err := Parse([]byte("datastore:abc\n  path   /x  \n  some-future-key 1\n \t\ndatastore: def\n\tpath /y"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Lookup("abc").Path != "/x" || c.Lookup("abc").Props["some-future-key"] != "1" || c.Lookup("def").Path != "/y" {
		t.Fatalf("%+v", c.Datastores)
	}
}

func TestMaintenance(t *testing.T) {
	for _, tc := range []struct {
		raw          string
		typ, msg     string
		bad          bool
		read, write  bool // allowed
		writeErrText string
	}{
		{raw: "read-only", typ: ModeReadOnly, read: true, writeErrText: "read-only maintenance mode: "},
		{raw: `type=read-only,message="disk replacement until Friday"`, typ: ModeReadOnly, msg: "disk replacement until Friday", read: true},
		{raw: "type=offline", typ: ModeOffline},
		{raw: "offline,message=disk%20swap", typ: ModeOffline, msg: "disk swap", writeErrText: "offline maintenance mode: disk swap"},
		{raw: "delete", typ: ModeDelete, writeErrText: "datastore is being deleted"},
		{raw: "unmount", typ: ModeUnmount, writeErrText: "datastore is being unmounted"},
		{raw: "s3-refresh", typ: ModeS3Refresh, writeErrText: "S3 refresh maintenance mode: "},
		{raw: `type=read-only,message="a \"q\" \\ b"`, typ: ModeReadOnly, msg: `a "q" \ b`, read: true},
		{raw: "type = offline", bad: true},
		{raw: "vacation", bad: true},
		{raw: "type=offline,colour=red", bad: true},
		{raw: `type=offline,message="x\t"`, bad: true},
		{raw: `type=offline,message="x"y`, bad: true},
		{raw: "offline,type=read-only", bad: true},
		{raw: "message=only", bad: true},
	} {
		m := ParseMaintenance(tc.raw)
		if (m.Err != nil) != tc.bad || (!tc.bad && (m.Type != tc.typ || (tc.msg != "" && m.Message != tc.msg))) {
			t.Errorf("%q: got %+v", tc.raw, m)
			continue
		}
		if got := m.Check(Read) == nil; got != tc.read {
			t.Errorf("%q: read allowed %v, want %v", tc.raw, got, tc.read)
		}
		werr := m.Check(Write)
		if werr == nil || !errors.Is(werr, ErrMaintenance) {
			t.Errorf("%q: write allowed: %v", tc.raw, werr)
		}
		if tc.writeErrText != "" && !strings.HasSuffix(werr.Error(), tc.writeErrText) {
			t.Errorf("%q: write error %q, want suffix %q", tc.raw, werr, tc.writeErrText)
		}
	}
	if err := (Maintenance{}).Check(Write); err != nil {
		t.Errorf("no mode refuses writes: %v", err)
	}
}

func TestBackend(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		local bool
		bad   bool
	}{
		{"type=filesystem", true, false},
		{"filesystem", true, false},
		{"type=s3,client=c,bucket=b", false, false},
		{"s3,client=c,bucket=b", false, false},
		{"bucket=b,client=c,max-cache-size=128GiB,type=s3", false, false},
		{"type=s3,client=c", false, true},
		{"type=filesystem,bucket=b", false, true},
		{"type=ceph", false, true},
		{"type=s3,client=c,bucket=b,region=x", false, true},
	} {
		b := ParseBackend(tc.raw)
		if b.Local() != tc.local || (b.Err != nil) != tc.bad {
			t.Errorf("%q: %+v", tc.raw, b)
		}
	}
	if !(Backend{}).Local() {
		t.Error("an absent backend is not local")
	}
}

func TestLoadAndFindDir(t *testing.T) {
	dir := t.TempDir()
	c, st, exists, err := Load(dir)
	if err != nil || exists || len(c.Datastores) != 0 || st != (Stamp{}) {
		t.Fatalf("missing file: %v %v %v", c, exists, err)
	}
	store := filepath.Join(dir, "store")
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(store, link); err != nil {
		t.Fatal(err)
	}
	cfg := "datastore: viasymlink\n\tpath " + link + "\n\ndatastore: other\n\tpath " + dir + "\n"
	if err := os.WriteFile(filepath.Join(dir, DatastoreFile), []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	c, st, exists, err = Load(dir)
	if err != nil || !exists || st == (Stamp{}) {
		t.Fatal(err)
	}
	got := c.FindDir(store)
	if len(got) != 1 || got[0].Name != "viasymlink" {
		t.Fatalf("FindDir: %+v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, DatastoreFile), []byte("# no comments\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestMounted(t *testing.T) {
	var blockDevs []string
	for _, d := range []string{"/dev/loop0", "/dev/loop1", "/dev/sda", "/dev/vda", "/dev/nvme0n1"} {
		if st, err := os.Stat(d); err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0 {
			blockDevs = append(blockDevs, d)
		}
	}
	if len(blockDevs) < 2 {
		t.Skip("needs two block device nodes to point at")
	}
	blockDev := blockDevs[0]
	dir := t.TempDir()
	byUUID := filepath.Join(dir, "by-uuid")
	os.Mkdir(byUUID, 0o755)
	os.Symlink(blockDev, filepath.Join(byUUID, "6f2b7c1e"))
	os.Symlink("/dev/null", filepath.Join(byUUID, "charuuid"))
	mi := filepath.Join(dir, "mountinfo")
	d := &Datastore{Name: "usb-weekly", BackingDevice: "6f2b7c1e", Path: "pbs/usb"}
	for _, c := range []struct {
		name, mountinfo, uuid string
		ok                    bool
	}{
		{"bind mount of the device", "45 27 7:0 /pbs/usb /mnt/datastore/usb-weekly rw,relatime - ext4 " + blockDev + " rw\n", "6f2b7c1e", true},
		{"escaped blanks elsewhere", "1 0 0:1 / /mnt/a\\040b rw - tmpfs tmpfs rw\n45 27 7:0 / /mnt/datastore/usb-weekly rw shared:1 - ext4 " + blockDev + " rw\n", "6f2b7c1e", true},
		{"not mounted (empty directory)", "1 0 0:1 / / rw - ext4 /dev/root rw\n", "6f2b7c1e", false},
		{"something else mounted there", "45 27 0:50 / /mnt/datastore/usb-weekly rw - tmpfs tmpfs rw\n", "6f2b7c1e", false},
		{"another device mounted there", "45 27 7:1 / /mnt/datastore/usb-weekly rw - ext4 " + blockDevs[1] + " rw\n", "6f2b7c1e", false},
		{"device missing", "45 27 7:0 / /mnt/datastore/usb-weekly rw - ext4 " + blockDev + " rw\n", "other", false},
		{"not a block device", "45 27 7:0 / /mnt/datastore/usb-weekly rw - ext4 /dev/null rw\n", "charuuid", false},
	} {
		os.WriteFile(mi, []byte(c.mountinfo), 0o644)
		d.BackingDevice = c.uuid
		if err := d.Mounted(mi, byUUID); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if err := (&Datastore{Name: "abc", Path: "/x"}).Mounted(mi, byUUID); err != nil {
		t.Errorf("a datastore that is not removable: %v", err)
	}
}
