package pxar

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func u64(v uint64) *uint64 { return &v }

// TestACLXattrEncoding checks the kernel posix_acl xattr bytes against
// hand-assembled ones (version 2, {tag u16, perm u16, id u32} entries).
func TestACLXattrEncoding(t *testing.T) {
	ent := func(tag, perm uint16, id uint32) string {
		b := []byte{byte(tag), byte(tag >> 8), byte(perm), byte(perm >> 8), byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)}
		return hex.EncodeToString(b)
	}
	const und = 0xffffffff
	for _, c := range []struct {
		name string
		e    Entry
		attr string
		want string
	}{
		{
			name: "access with mask",
			e: Entry{Mode: ModeRegular | 0o640, ACL: ACL{
				Users:    []ACLEntry{{ID: 1001, Perm: 6}},
				Groups:   []ACLEntry{{ID: 100, Perm: 4}},
				GroupObj: u64(5),
			}},
			attr: XattrACLAccess,
			want: "02000000" + ent(1, 6, und) + ent(2, 6, 1001) + ent(4, 5, und) + ent(8, 4, 100) + ent(0x10, 4, und) + ent(0x20, 0, und),
		},
		{
			name: "named users sorted by id, no GROUP_OBJ item: mode group bits are GROUP_OBJ and MASK",
			e: Entry{Mode: ModeRegular | 0o751, ACL: ACL{
				Users: []ACLEntry{{ID: 7, Perm: 1}, {ID: 3, Perm: 2}},
			}},
			attr: XattrACLAccess,
			want: "02000000" + ent(1, 7, und) + ent(2, 2, 3) + ent(2, 1, 7) + ent(4, 5, und) + ent(0x10, 5, und) + ent(0x20, 1, und),
		},
		{
			name: "default with mask",
			e: Entry{Mode: ModeDir | 0o755, ACL: ACL{
				Default:      &ACLDefault{UserObj: 7, GroupObj: 5, Other: 0, Mask: 5},
				DefaultUsers: []ACLEntry{{ID: 1001, Perm: 7}},
			}},
			attr: XattrACLDefault,
			want: "02000000" + ent(1, 7, und) + ent(2, 7, 1001) + ent(4, 5, und) + ent(0x10, 5, und) + ent(0x20, 0, und),
		},
		{
			name: "default without mask or named entries",
			e: Entry{Mode: ModeDir | 0o755, ACL: ACL{
				Default: &ACLDefault{UserObj: 7, GroupObj: 5, Other: 4, Mask: ACLNoMask},
			}},
			attr: XattrACLDefault,
			want: "02000000" + ent(1, 7, und) + ent(4, 5, und) + ent(0x20, 4, und),
		},
	} {
		got, ok := c.e.Xattr(c.attr)
		if !ok || hex.EncodeToString(got) != c.want {
			t.Errorf("%s: %s = %x, %v\n want %s", c.name, c.attr, got, ok, c.want)
		}
	}
}

func TestXattrNames(t *testing.T) {
	a, _ := openFixture(t, fixtures[0], Options{})
	for path, want := range map[string][]string{
		"/xattr-file": {"security.selinux", "user.comment", "user.empty", XattrACLAccess},
		"/acl-dir":    {XattrACLAccess, XattrACLDefault},
		"/bin/ping":   {XattrCapability},
		"/README.txt": {},
	} {
		e, err := lookupPath(a, path)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.XattrNames(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: XattrNames = %q, want %q", path, got, want)
		}
		for _, n := range want {
			if _, ok := e.Xattr(n); !ok {
				t.Errorf("%s: Xattr(%q) missing", path, n)
			}
		}
		if _, ok := e.Xattr("user.nope"); ok {
			t.Errorf("%s: Xattr(user.nope) found", path)
		}
	}
	e, _ := lookupPath(a, "/xattr-file")
	if v, _ := e.Xattr("security.selinux"); string(v) != "system_u:object_r:tmp_t:s0\x00" {
		t.Errorf("security.selinux = %q", v)
	}
	e, _ = lookupPath(a, "/bin/ping")
	if v, _ := e.Xattr(XattrCapability); hex.EncodeToString(v) != "0100000200200000000000000000000000000000" {
		t.Errorf("security.capability = %x", v)
	}
}

// TestACLXattrKernel sets the fixture's ACLs with setfacl on real files and
// compares the kernel's xattr bytes with the reader's; then it sets the
// reader's bytes with setxattr(2) (the kernel validates them) and checks
// what getfacl prints.
func TestACLXattrKernel(t *testing.T) {
	for _, tool := range []string{"setfacl", "getfacl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing (package acl)", tool)
			}
			t.Skipf("%s missing (package acl)", tool)
		}
	}
	a, _ := openFixture(t, fixtures[0], Options{})
	dir := t.TempDir()
	for _, c := range []struct {
		path, attr string
		mode       os.FileMode
		isDir      bool
		setfacl    []string
		getfacl    string
	}{
		{"/xattr-file", XattrACLAccess, 0o640, false,
			[]string{"-m", "u::rw-,u:1001:rw-,g::r-x,g:100:r--,m::r--,o::---"},
			"user::rw-\nuser:1001:rw-\t#effective:r--\ngroup::r-x\t#effective:r--\ngroup:100:r--\nmask::r--\nother::---\n"},
		{"/acl-dir", XattrACLAccess, 0o770, true,
			[]string{"-m", "u::rwx,u:1002:r-x,g::rwx,g:101:r--,m::rwx,o::---"},
			"user::rwx\nuser:1002:r-x\ngroup::rwx\ngroup:101:r--\nmask::rwx\nother::---\n"},
		{"/acl-dir", XattrACLDefault, 0o770, true,
			[]string{"-d", "-m", "u::rwx,u:1001:rwx,g::r-x,g:100:r-x,o::---"},
			"default:user::rwx\ndefault:user:1001:rwx\ndefault:group::r-x\ndefault:group:100:r-x\ndefault:mask::rwx\ndefault:other::---\n"},
	} {
		e, err := lookupPath(a, c.path)
		if err != nil {
			t.Fatal(err)
		}
		ours, ok := e.Xattr(c.attr)
		if !ok {
			t.Fatalf("%s has no %s", c.path, c.attr)
		}
		for i, set := range []bool{false, true} {
			p := filepath.Join(dir, strings.Trim(c.path, "/")+c.attr+[]string{"-setfacl", "-setxattr"}[i])
			if c.isDir {
				err = os.Mkdir(p, c.mode)
			} else {
				err = os.WriteFile(p, nil, c.mode)
			}
			if err == nil {
				err = os.Chmod(p, c.mode)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !set {
				if out, err := exec.Command("setfacl", append(c.setfacl, p)...).CombinedOutput(); err != nil {
					t.Fatalf("setfacl: %v: %s", err, out)
				}
				kernel := make([]byte, 1024)
				n, err := unix.Getxattr(p, c.attr, kernel)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(kernel[:n], ours) {
					t.Errorf("%s %s:\n kernel %x\n reader %x", c.path, c.attr, kernel[:n], ours)
				}
				continue
			}
			if err := unix.Setxattr(p, c.attr, ours, 0); err != nil {
				t.Fatalf("%s %s: the kernel refuses the reader's bytes: %v", c.path, c.attr, err)
			}
			out, err := exec.Command("getfacl", "-n", "-p", "--omit-header", p).Output()
			if err != nil {
				t.Fatalf("getfacl: %v", err)
			}
			got := strings.TrimSpace(string(out))
			if c.attr == XattrACLAccess {
				// Only the access part (a directory may print defaults).
				got = strings.Split(got, "\ndefault:")[0]
			} else {
				got = got[strings.Index(got, "default:"):]
			}
			if got != strings.TrimSpace(c.getfacl) {
				t.Errorf("%s %s: getfacl prints\n%s\nwant\n%s", c.path, c.attr, got, c.getfacl)
			}
		}
	}
}
