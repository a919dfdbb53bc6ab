package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"pbsfs/demo"
	"pbsfs/internal/testsupport"
)

// traversable makes a test directory and its parents up to the test's own
// temporary root reachable by other users (t.TempDir makes them 0700).
func traversable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// asNobody runs a shell script as user nobody (group nogroup, no
// supplementary groups) and returns its combined output.
func asNobody(t *testing.T, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// requireNobody fails or skips unless we are root and can become nobody.
func requireNobody(t *testing.T) {
	t.Helper()
	testsupport.RequireRoot(t, "run commands as user nobody and chown the datastore")
	if _, err := exec.LookPath("setpriv"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setpriv (util-linux) not found — CI=true, so this test must not be skipped")
		}
		t.Skip("setpriv not found")
	}
	if out, err := asNobody(t, "id -un"); err != nil || strings.TrimSpace(out) != "nobody" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run as nobody: %v %s — CI=true, so this test must not be skipped", err, out)
		}
		t.Skipf("cannot run as nobody: %v %s", err, out)
	}
}

// TestPermissions: with --allow-other (the kernel then checks permissions,
// default_permissions), user nobody sees and changes only what the
// datastore's own modes let them: readable manifests and notes, but not a
// snapshot directory, group directory, manifest or group notes file their
// modes close to others, and never a write to a manifest they could not
// write directly. Without --allow-other, other users get nothing at all.
// Root's notes writes keep the files' owner, group and mode.
func TestPermissions(t *testing.T) {
	t.Parallel()
	requireNobody(t)
	uid, gid := backupIDs(t)
	root := t.TempDir()
	store := filepath.Join(root, "store")
	if _, err := demo.Sample(store); err != nil {
		t.Fatal(err)
	}
	// Everything belongs to backup:backup, as PBS makes it; then some
	// things are closed to others.
	mustSh(t, store, "chown -R "+strconv.Itoa(uid)+":"+strconv.Itoa(gid)+" .")
	const (
		open      = "vm/100/2024-06-01T02:00:04Z"         // blob 0644
		closedDir = "vm/100/2024-06-03T02:00:05Z"         // snapshot dir 0700
		closedMan = "ct/200/2024-06-01T01:30:00Z"         // blob 0600
		closedGrp = "ns/prod/vm/300"                      // group dir 0750
		grpNotes  = "host/backup-client"                  // group notes 0600
		group640  = "ct/200/2024-06-02T01:30:00Z"         // blob 0640, written by root below
		openGroup = "vm/100"                              // group notes 0644
		snapInGrp = "ns/prod/vm/300/2024-05-31T22:00:02Z" // inside closedGrp
		hostSnap  = "host/backup-client/2024-06-02T00:00:00Z"
	)
	mustSh(t, store, "chmod 0700 "+closedDir+" && chmod 0600 "+closedMan+"/index.json.blob && chmod 0750 "+closedGrp+
		" && chmod 0600 "+grpNotes+"/notes && chmod 0640 "+group640+"/index.json.blob")
	traversable(t, root)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	traversable(t, mnt)

	// What nobody can do directly on the datastore is the reference.
	direct := func(script string) bool {
		_, err := asNobody(t, "cd '"+store+"' && "+script)
		return err == nil
	}
	for _, c := range []struct {
		script string
		want   bool
	}{
		{"cat " + open + "/index.json.blob >/dev/null", true},
		{"ls " + closedDir + " >/dev/null", false},
		{"cat " + closedMan + "/index.json.blob >/dev/null", false},
		{"ls " + closedGrp + " >/dev/null", false},
		{"cat " + grpNotes + "/notes >/dev/null", false},
		{"cat " + openGroup + "/notes >/dev/null", true},
		{"cat " + group640 + "/index.json.blob >/dev/null", false},
		{"printf x >> " + open + "/index.json.blob", false},
	} {
		if got := direct(c.script); got != c.want {
			t.Fatalf("setup: nobody %q directly: %v, want %v", c.script, got, c.want)
		}
	}

	m := startMountAs(t, store, mnt, []string{"env"}, "--allow-other")
	p := func(rel string) string { return "'" + m.path(rel) + "'" }
	before := treeDigest(t, store)

	allowed := []string{
		"ls " + p("") + " " + p("vm") + " " + p(openGroup) + " " + p(open),
		"cat " + p(open+"/notes") + " " + p(open+"/manifest.json") + " " + p(openGroup+"/notes") + " " + p(openGroup+"/owner"),
		"cat " + p(hostSnap+"/notes"),
		"stat " + p(closedDir) + " " + p(closedGrp), // the entries themselves are visible, as with ls -l on disk
	}
	for _, s := range allowed {
		if out, err := asNobody(t, s+" >/dev/null"); err != nil {
			t.Errorf("nobody: %s: %v\n%s", s, err, out)
		}
	}
	denied := []string{
		// Reading what the datastore's modes close.
		"ls " + p(closedDir),
		"cat " + p(closedDir+"/notes"),
		"cat " + p(closedMan+"/notes"),
		"cat " + p(closedMan+"/manifest.json"),
		"ls " + p(closedGrp),
		"cat " + p(snapInGrp+"/notes"),
		"cat " + p(closedGrp+"/notes"),
		"cat " + p(grpNotes+"/notes"),
		"cat " + p(group640+"/notes"),
		// Changing anything: notes of manifests nobody cannot write, group
		// notes, removal, scratch files.
		"printf x > " + p(open+"/notes"),
		"printf x >> " + p(open+"/notes"),
		"truncate -s 0 " + p(open+"/notes"),
		"printf x > " + p(openGroup+"/notes"),
		"printf x > " + p(hostSnap+"/notes"),
		"rmdir " + p(open),
		"rmdir " + p(hostSnap),
		"touch " + p(open+"/.notes.swp"),
		"mv " + p(open+"/notes") + " " + p(open+"/notes~"),
	}
	for _, s := range denied {
		out, err := asNobody(t, s)
		if err == nil {
			t.Errorf("nobody: %s succeeded\n%s", s, out)
		} else if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
			t.Errorf("nobody: %s: %v, want Permission denied\n%s", s, err, out)
		}
	}
	diffDigests(t, before, treeDigest(t, store))

	// Root writes notes: owner, group and mode of the files stay.
	for _, rel := range []string{open, group640} {
		blob := filepath.Join(store, rel, "index.json.blob")
		u0, g0, mode0 := fileOwner(t, blob)
		mustSh(t, m.path(rel), "echo written by root > notes")
		if mm, _ := loadManifest(t, store, rel); mm.Notes() != "written by root\n" {
			t.Errorf("%s: notes %q", rel, mm.Notes())
		}
		if u, g, mode := fileOwner(t, blob); u != u0 || g != g0 || mode != mode0 {
			t.Errorf("%s: after root's notes write %d:%d %v, was %d:%d %v", rel, u, g, mode, u0, g0, mode0)
		}
	}
	gn := filepath.Join(store, grpNotes, "notes")
	u0, g0, mode0 := fileOwner(t, gn)
	mustSh(t, m.path(grpNotes), "echo group notes by root > notes")
	if u, g, mode := fileOwner(t, gn); u != u0 || g != g0 || mode != mode0 {
		t.Errorf("group notes after root's write %d:%d %v, was %d:%d %v", u, g, mode, u0, g0, mode0)
	}
	m.stop()

	// Without --allow-other nobody gets nothing, not even the mountpoint.
	m2 := startMountAs(t, store, mnt, []string{"env"})
	for _, s := range []string{"ls " + p(""), "stat " + p(""), "cat " + p(open+"/notes")} {
		out, err := asNobody(t, s)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody without --allow-other: %s: %v\n%s", s, err, out)
		}
	}
	if b, err := os.ReadFile(m2.path(open, "notes")); err != nil || !bytes.Equal(b, []byte("written by root\n")) {
		t.Errorf("root through the mount without --allow-other: %q, %v", b, err)
	}
	m2.stop()
}
